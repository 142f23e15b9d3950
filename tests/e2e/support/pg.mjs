// Connections to the private cluster started by `make test` (PGHOST/PGPORT/PGDATABASE).
import pg from 'pg';

export async function connect() {
  const client = new pg.Client({ database: process.env.PGDATABASE ?? 'evstream_test' });
  await client.connect();
  return client;
}

export async function connectMany(n) {
  return Promise.all(Array.from({ length: n }, () => connect()));
}

export async function closeAll(clients) {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
}

export function unique(prefix) {
  return `${prefix}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

// Polls fn until it returns a truthy value, or fails after timeoutMs.
export async function waitFor(fn, { timeoutMs = 30000, intervalMs = 10, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const post = (client, channel, type, id, eventType, extra = {}) => {
  const names = Object.keys(extra);
  const args = names.map((n, i) => `${n} => $${i + 5}`).join(', ');
  return client
    .query(
      `SELECT * FROM evstream.post_event($1, $2, $3, $4${args ? ', ' + args : ''})`,
      [channel, type, id, eventType, ...names.map((n) => extra[n])],
    )
    .then((r) => r.rows[0]);
};
