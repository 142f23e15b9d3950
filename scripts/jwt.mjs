// Prints an HS256 JWT (demo and benchmarks): node scripts/jwt.mjs SECRET '{"sub":"bench","projects":["bench"]}'
import { createHmac } from 'node:crypto';

const [secret, claimsJson] = process.argv.slice(2);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const claims = { exp: Math.floor(Date.now() / 1000) + 3600, ...JSON.parse(claimsJson || '{}') };
const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
console.log(`${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`);
