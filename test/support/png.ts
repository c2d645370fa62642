import { inflateSync } from 'node:zlib';

export interface DecodedPng {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel, row after row. */
  rgba: Buffer;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/**
 * Decodes an 8-bit non-interlaced PNG (greyscale, RGB, RGBA: what Chromium screenshots are) into
 * RGBA pixels. Enough for tests that look for a colour in a screenshot; not a general decoder.
 */
export function decodePng(png: Buffer): DecodedPng {
  if (png.readUInt32BE(0) !== 0x89504e47) {
    throw new Error('not a PNG');
  }
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colour, , , interlace] = [data[8], data[9], data[10], data[11], data[12]];
      channels = CHANNELS[colour as number] ?? 0;
      if (depth !== 8 || !channels || interlace !== 0) {
        throw new Error(`unsupported PNG (depth ${depth}, colour type ${colour}, interlace ${interlace})`);
      }
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    unfilter(raw, y * (stride + 1), pixels, y * stride, stride, channels, y > 0);
  }
  const rgba = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const p = i * channels;
    const grey = channels <= 2;
    rgba[i * 4] = pixels[p] as number;
    rgba[i * 4 + 1] = pixels[grey ? p : p + 1] as number;
    rgba[i * 4 + 2] = pixels[grey ? p : p + 2] as number;
    rgba[i * 4 + 3] = channels === 4 ? (pixels[p + 3] as number) : channels === 2 ? (pixels[p + 1] as number) : 255;
  }
  return { width, height, rgba };
}

/** PNG §9: reverses one scanline's filter into `out` (the previous line is already there). */
function unfilter(
  raw: Buffer,
  at: number,
  out: Buffer,
  row: number,
  stride: number,
  bpp: number,
  hasPrevious: boolean,
): void {
  const filter = raw[at] as number;
  for (let x = 0; x < stride; x++) {
    const v = raw[at + 1 + x] as number;
    const a = x >= bpp ? (out[row + x - bpp] as number) : 0;
    const b = hasPrevious ? (out[row - stride + x] as number) : 0;
    const c = x >= bpp && hasPrevious ? (out[row - stride + x - bpp] as number) : 0;
    let predicted = 0;
    if (filter === 1) {
      predicted = a;
    } else if (filter === 2) {
      predicted = b;
    } else if (filter === 3) {
      predicted = (a + b) >> 1;
    } else if (filter === 4) {
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    out[row + x] = (v + predicted) & 0xff;
  }
}

/** How many pixels are within `tolerance` (per channel) of the colour `#rrggbb`. */
export function countColour(img: DecodedPng, hex: string, tolerance = 24): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
  let n = 0;
  for (let i = 0; i < img.rgba.length; i += 4) {
    if (
      Math.abs((img.rgba[i] as number) - r) <= tolerance &&
      Math.abs((img.rgba[i + 1] as number) - g) <= tolerance &&
      Math.abs((img.rgba[i + 2] as number) - b) <= tolerance
    ) {
      n += 1;
    }
  }
  return n;
}
