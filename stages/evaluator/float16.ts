// IEEE 754 half precision for features kept in JS memory or a file at 2 bytes a value (Node has
// no Float16Array): encoding rounds to nearest, ties to even, as a hardware conversion does;
// overflow gives ±Infinity, values below half the smallest subnormal give ±0.

const single = new Float32Array(1);
const singleBits = new Uint32Array(single.buffer);
let decodeTable: Float32Array | undefined;

function encodeOne(value: number): number {
  single[0] = value;
  const bits = singleBits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const halfExponent = exponent - 112;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    // A subnormal half: the implicit leading 1 joins the mantissa, shifted into 10 bits.
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    const half = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    return sign | (rest > halfway || (rest === halfway && (half & 1) === 1) ? half + 1 : half);
  }
  const half = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa moves to the next exponent (up to Infinity), as it should.
  return sign | (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? half + 1 : half);
}

function decodeOne(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >>> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export const float16 = {
  /** Half-precision bits of each value, into `out` (a new array when not given). */
  encode(values: Float32Array, out = new Uint16Array(values.length)): Uint16Array {
    for (let i = 0; i < values.length; i++) out[i] = encodeOne(values[i]);
    return out;
  },

  /** The float32 values of half-precision bits, into `out` (a new array when not given). */
  decode(halves: Uint16Array, out = new Float32Array(halves.length)): Float32Array {
    if (!decodeTable) {
      decodeTable = new Float32Array(0x10000);
      for (let bits = 0; bits < 0x10000; bits++) decodeTable[bits] = decodeOne(bits);
    }
    for (let i = 0; i < halves.length; i++) out[i] = decodeTable[halves[i]];
    return out;
  },
};
