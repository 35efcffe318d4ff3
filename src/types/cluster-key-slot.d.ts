// cluster-key-slot ships no types: the CRC16 slot function ioredis routes cluster commands by.
declare module 'cluster-key-slot' {
  /** The cluster hash slot (0–16383) of `key`, honouring a `{hash tag}`. */
  export default function calculateSlot(key: string | Buffer): number;
}
