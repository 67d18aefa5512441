// Hashes for the tables whose keys a host behind the NAT chooses (destination address and port,
// source port): simple tabulation hashing (Zobrist) over tables of random words drawn once per
// process. A fixed hash lets anyone compute keys that all land in one probe run offline, and
// 65,536 of them turn each lookup into a scan of the whole run; with secret random tables
// colliding keys cannot be found without the tables, and linear probing over simple tabulation
// keeps O(1) expected probes on every key set (Pătraşcu & Thorup, "The power of simple
// tabulation hashing", 2012). V8's own seed covers string keys; small-integer Map keys are
// hashed unseeded, so a Map keyed by such numbers needs this too.
import { randomFillSync } from 'node:crypto';

/** One table of 256 random words per input byte: 4 words of 4 bytes, in this order. */
const T = randomFillSync(new Int32Array(16 * 256));

function word(w: number, at: number): number {
  return T[at + (w & 255)]! ^ T[at + 256 + ((w >>> 8) & 255)]! ^ T[at + 512 + ((w >>> 16) & 255)]! ^ T[at + 768 + (w >>> 24)]!;
}

/** Hash of three 32-bit words (all bits usable: mask the low ones for a power-of-two table). */
export function hash3(a: number, b: number, c: number): number {
  return word(a, 0) ^ word(b, 1024) ^ word(c, 2048);
}

/** Hash of a 32-bit word and a 16-bit one (a flow id and its zone, a key id and a port). */
export function hash2(a: number, b16: number): number {
  return word(a, 0) ^ T[3072 + (b16 & 255)]! ^ T[3328 + ((b16 >>> 8) & 255)]!;
}
