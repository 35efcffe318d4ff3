import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus, loadavg, release, totalmem } from 'node:os';

/** What the numbers were measured on, written next to them. */

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  kernel: string;
  /** 1, 5 and 15 minutes: anything else running on the machine skews the numbers. */
  loadAverageAtStart: number[];
}

export interface GitState {
  commit: string | null;
  /** Tracked files with uncommitted changes: the numbers are of the work tree, not of the commit. */
  dirtyPaths: string[];
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    kernel: release(),
    loadAverageAtStart: loadavg(),
  };
}

export function gitState(): GitState {
  const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    // Porcelain lines are `XY path`; X may be a space, so lines are not trimmed.
    const dirtyPaths = git('status', '--porcelain', '--untracked-files=no')
      .split('\n')
      .filter(Boolean)
      .map((line) => line.slice(3));
    return { commit: git('rev-parse', 'HEAD').trim(), dirtyPaths };
  } catch {
    return { commit: null, dirtyPaths: [] };
  }
}

export function autocannonVersion(): string {
  return (createRequire(import.meta.url)('autocannon/package.json') as { version: string }).version;
}
