import { tracingChannel } from 'node:diagnostics_channel';

/**
 * Counts the Redis commands this process sends, through ioredis' own
 * diagnostics channel (`ioredis:command`, one event per command written).
 * A MULTI … EXEC block is written at once and answered at once: it counts as
 * one round trip, whatever it holds; every other command is one round trip.
 * (A plain pipeline would be counted per command: Parley batches with MULTI.)
 */

export interface RedisTally {
  commands: number;
  roundTrips: number;
  /** Per command name, lower case; commands inside a MULTI as well. */
  byCommand: Record<string, number>;
}

export interface RedisCommandCounter {
  /** What was counted since the last reset. */
  take(): RedisTally;
  reset(): void;
  dispose(): void;
}

interface CommandContext {
  command: string;
}

export function countRedisCommands(): RedisCommandCounter {
  const channel = tracingChannel<CommandContext>('ioredis:command');
  let tally: RedisTally = { commands: 0, roundTrips: 0, byCommand: {} };
  let inMulti = false;
  const start = (context: CommandContext) => {
    const name = context.command.toLowerCase();
    tally.commands += 1;
    tally.byCommand[name] = (tally.byCommand[name] ?? 0) + 1;
    if (name === 'multi') {
      inMulti = true;
      tally.roundTrips += 1;
    } else if (name === 'exec') inMulti = false;
    else if (!inMulti) tally.roundTrips += 1;
  };
  const handlers = { start, end: () => {}, asyncStart: () => {}, asyncEnd: () => {}, error: () => {} };
  channel.subscribe(handlers);
  return {
    take: () => {
      const out = tally;
      tally = { commands: 0, roundTrips: 0, byCommand: {} };
      return out;
    },
    reset: () => {
      tally = { commands: 0, roundTrips: 0, byCommand: {} };
      inMulti = false;
    },
    dispose: () => channel.unsubscribe(handlers),
  };
}
