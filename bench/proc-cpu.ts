import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of processes from Linux's /proc: utime + stime of a process and of
 * its descendants (fields 14 and 15 of /proc/<pid>/stat, in clock ticks), plus
 * what its children that already exited used (cutime + cstime). Read before
 * and after a measured run, the difference over the requests answered is the
 * CPU a request cost that process tree. null where /proc cannot tell (not
 * Linux, process gone): the report then says n/a.
 */

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, ticks. */
  own: number;
  /** cutime + cstime: children waited for, ticks. */
  children: number;
}

function readStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): field n is fields[n - 3].
    return { pid, ppid: Number(fields[1]), own: Number(fields[11]) + Number(fields[12]), children: Number(fields[13]) + Number(fields[14]) };
  } catch {
    return null;
  }
}

function allStats(): ProcStat[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const stats: ProcStat[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** CPU milliseconds used so far by `pid` and every descendant (living or reaped); null when `pid` is gone. */
export function treeCpuMs(pid: number): number | null {
  const stats = allStats();
  const root = stats.find((s) => s.pid === pid);
  if (!root) return null;
  const byParent = new Map<number, ProcStat[]>();
  for (const s of stats) byParent.set(s.ppid, [...(byParent.get(s.ppid) ?? []), s]);
  let ticks = root.children;
  const queue = [root];
  while (queue.length) {
    const s = queue.pop()!;
    ticks += s.own;
    for (const child of byParent.get(s.pid) ?? []) {
      ticks += child.children;
      queue.push(child);
    }
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

/**
 * The postmaster of a PostgreSQL listening on `port` of this machine, found
 * by its command line (`postgres … -p <port>`); null when there is none here
 * (a remote DATABASE_URL, or a server started otherwise).
 */
export function findPostmaster(port: number): number | null {
  for (const s of allStats()) {
    try {
      const argv = readFileSync(`/proc/${s.pid}/cmdline`, 'utf8').split('\0');
      if (!/(^|\/)postgres$/.test(argv[0] ?? '')) continue;
      const at = argv.indexOf('-p');
      if (at >= 0 && argv[at + 1] === String(port)) return s.pid;
    } catch {
      // gone meanwhile
    }
  }
  return null;
}
