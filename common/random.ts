// A small seeded pseudo-random generator (xoshiro128**, seeded through splitmix32) for everything
// that must be reproducible bit for bit: shuffles, random crops, flips. Math.random is never used
// for data. Streams are derived from a tuple of integers (seed, epoch, index, ...) by hashing, so a
// sample's augmentation does not depend on which batch it lands in or on how many came before it.

export interface Random {
  /** A uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number;
  /** A float in [0, 1) with 53 random bits. */
  next(): number;
  /** A float in [low, high). */
  uniform(low: number, high: number): number;
  /** An integer in [low, high) (high exclusive, like Python's randrange). */
  integer(low: number, high: number): number;
}

function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [state, (z ^ (z >>> 16)) >>> 0];
}

/** Hashes a tuple of integers (each taken modulo 2^32) into one 32-bit seed. */
export function deriveSeed(...parts: number[]): number {
  let hash = 0x2545f491;
  for (const part of parts) {
    if (!Number.isInteger(part)) throw new Error(`deriveSeed: parts must be integers, got ${part}`);
    // Fold in the high bits of integers beyond 32 bits as well.
    const low = part >>> 0;
    const high = Math.floor(part / 4294967296) >>> 0;
    for (const word of [low, high]) {
      let [state, mixed] = splitmix32(hash ^ word);
      [state, mixed] = splitmix32(state ^ mixed);
      hash = mixed;
    }
  }
  return hash >>> 0;
}

class Xoshiro128 implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let state = seed | 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      let word: number;
      [state, word] = splitmix32(state);
      words.push(word);
    }
    [this.a, this.b, this.c, this.d] = words;
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // the all-zero state is a fixed point
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  next(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }

  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  integer(low: number, high: number): number {
    if (!(high > low)) throw new Error(`Random.integer: empty range [${low}, ${high})`);
    return low + Math.floor(this.next() * (high - low));
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A generator seeded by a tuple of integers: createRandom(seed, epoch, index). */
export function createRandom(...seedParts: number[]): Random {
  return new Xoshiro128(deriveSeed(...seedParts));
}

/** createRandom(seed) as a plain function returning floats in [0, 1). */
export function randomFunction(...seedParts: number[]): () => number {
  const random = createRandom(...seedParts);
  return () => random.next();
}

/** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, random: Random): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1));
    const swap = order[i];
    order[i] = order[j];
    order[j] = swap;
  }
  return order;
}

/**
 * A seed for TensorFlow.js's random ops, which read a seed of 0 as no seed at all
 * (`seed ? seed : Math.random()` in tfjs-core's rand_util), so seed 0 gave a different draw on
 * every run. 0 is passed as 0.5, which no integer seed collides with; other seeds are unchanged.
 */
export function tfjsSeed(seed: number | undefined): number | undefined {
  return seed === 0 ? 0.5 : seed;
}
