// Splits a `perf script -F ip,sym,dso` dump of evstreamd's samples (call chains recorded with
// -g or --call-graph dwarf) into where the CPU goes. One bucket per sample:
//   kernel samples by the nearest marker on the kernel call chain (leaf first): the loopback
//   receive softirq (the peer's TCP receive, run and charged in the sender's context), the TCP
//   send path (write/writev/sendto -> tcp_sendmsg -> loopback xmit), reads, epoll, scheduler,
//   syscall entry/exit (leaf in the entry code), the rest;
//   user samples by their leaf's library; malloc/free (libc's allocator and libstdc++'s
//   operator new/delete) apart; evstreamd's own code split by namespace.
// Prints a TSV: bucket, samples, percent.   perf script ... | node profile_shares.mjs
// With --callers (samples of a malloc uprobe): the first two frames outside libc and libstdc++
// of each sample instead, i.e. who allocates.
import readline from 'node:readline';

const kernelMarkers = [
  [/^(net_rx_action|__napi_poll|process_backlog|__netif_receive_skb|do_softirq|__do_softirq)/, 'kernel: loopback receive softirq (peer TCP receive charged to the sender)'],
  [/^(tcp_sendmsg|tcp_sendmsg_locked|__sys_sendto|sock_sendmsg|do_writev|vfs_writev|ksys_write|sock_write_iter|__x64_sys_writev|__x64_sys_write)$/, 'kernel: TCP send path (write/writev/send -> tcp_sendmsg -> loopback xmit)'],
  [/^(tcp_recvmsg|tcp_recvmsg_locked|sock_read_iter|ksys_read|__sys_recvfrom|sock_recvmsg)$/, 'kernel: TCP receive (read/recv)'],
  [/^(do_epoll_wait|do_epoll_ctl|ep_poll|__x64_sys_epoll)/, 'kernel: epoll'],
  [/^(schedule|__schedule|schedule_hrtimeout_range)/, 'kernel: scheduler'],
];
const entryLeaf = /^(entry_SYSCALL|syscall_exit|do_syscall_64|syscall_return|exit_to_user_mode|__x64_sys_|__fdget|fput|__fget|x64_sys_call|syscall_enter)/;
const mallocSym = /^(malloc|free|cfree|calloc|realloc|_int_malloc|_int_free|_int_realloc|__libc_malloc|__libc_free|__libc_calloc|__libc_realloc|malloc_consolidate|unlink_chunk|tcache_|__GI___libc_malloc|__GI___libc_free|operator new|operator delete)/;

function userBucket(dso, sym) {
  if (mallocSym.test(sym)) return 'malloc/free (libc allocator, operator new/delete)';
  if (/libuv/.test(dso)) return 'libuv';
  if (/libpq/.test(dso)) return 'libpq';
  if (/libhttp_parser/.test(dso)) return 'http_parser (the POST requests)';
  if (/libcrypto|libssl/.test(dso)) return 'OpenSSL (JWT HMAC of the POSTs)';
  if (/libc\.so|libc-/.test(dso)) return 'libc other (memcpy, memchr, ...)';
  if (/libstdc\+\+/.test(dso)) return 'libstdc++ other';
  if (/evstreamd/.test(dso)) {
    if (/nlohmann/.test(sym)) return 'ours: nlohmann JSON (event parse / frame build)';
    const m = sym.match(/evstream::(\w+)::/);
    if (m) return `ours: evstream::${m[1]}`;
    return 'ours: other (inlined std::, shared_ptr, ...)';
  }
  return `other user (${dso})`;
}

const callers = process.argv.includes('--callers');
const outside = (f) => !/libc\.so|libstdc\+\+/.test(f.dso);
const counts = new Map();
let total = 0;
let frames = [];
function finish() {
  if (frames.length === 0) return;
  total++;
  const [leaf] = frames;
  let bucket;
  if (callers) {
    const ours = frames.filter(outside).slice(0, 2).map((f) => f.sym.replace(/\(.*$/, ''));
    bucket = ours.length ? ours.join(' <- ') : '(no caller outside libc/libstdc++)';
  } else if (leaf.kernel) {
    if (entryLeaf.test(leaf.sym)) bucket = 'kernel: syscall entry/exit';
    else {
      for (const f of frames) {
        if (!f.kernel) break;
        const hit = kernelMarkers.find(([re]) => re.test(f.sym));
        if (hit) { bucket = hit[1]; break; }
      }
      bucket ??= 'kernel: other (timers, faults, ...)';
    }
  } else {
    bucket = userBucket(leaf.dso, leaf.sym);
  }
  counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  frames = [];
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  // Sample header lines start at column 0; frames are indented "  ip sym+off (dso)".
  if (line.trim() === '') { finish(); continue; }
  const m = line.match(/^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$/);
  if (!m) continue;
  const sym = m[1].replace(/\+0x[0-9a-f]+$/, '');
  const dso = m[2];
  frames.push({ sym, dso, kernel: /kernel\.kallsyms|\[kernel/.test(dso) });
}
finish();
const rows = [...counts].sort((a, b) => b[1] - a[1]);
for (const [b, n] of rows) console.log(`${b}\t${n}\t${((100 * n) / total).toFixed(1)}`);
console.log(`total samples\t${total}\t100.0`);
