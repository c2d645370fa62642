import { closeSync, openSync, writeSync } from 'node:fs';
import { crc32, deflateRawSync } from 'node:zlib';

/**
 * A minimal zip writer (PKWARE APPNOTE 4.3: local headers, deflate, central directory; no zip64)
 * that writes as it goes, so a benchmark archive of 10 000 patients never sits in memory (jszip
 * keeps every entry until it generates). Entries are written whole: each is small.
 */
export class ZipWriter {
  private offset = 0;
  private readonly central: Buffer[] = [];
  private count = 0;

  /** `out` receives the bytes in order (a file descriptor writer, or a collector). */
  constructor(private readonly out: (chunk: Buffer) => void) {}

  /** Writes to a file. */
  static toFile(path: string): { zip: ZipWriter; close: () => void } {
    const fd = openSync(path, 'w');
    const zip = new ZipWriter((chunk) => {
      writeSync(fd, chunk);
    });
    return {
      zip,
      close: () => {
        zip.finish();
        closeSync(fd);
      },
    };
  }

  /** Builds a zip in memory (a patient's XDM). */
  static toBuffer(fill: (zip: ZipWriter) => void): Buffer {
    const chunks: Buffer[] = [];
    const zip = new ZipWriter((c) => chunks.push(c));
    fill(zip);
    zip.finish();
    return Buffer.concat(chunks);
  }

  /**
   * Adds one file. `damage`: flips bytes of the stored data after the checksum was computed (a
   * corrupt entry for tests), leaving sizes and headers intact.
   */
  add(name: string, data: Buffer, opts: { store?: boolean; damage?: boolean } = {}): void {
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(data) >>> 0;
    const method = opts.store ? 0 : 8;
    const body = opts.store ? Buffer.from(data) : deflateRawSync(data, { level: 1 });
    if (opts.damage) {
      for (let i = Math.floor(body.length / 3); i < Math.min(body.length, Math.floor(body.length / 3) + 16); i++) {
        body[i] ^= 0xa5;
      }
    }
    // DOS date 2026-01-01 00:00: fixed, so a seed gives the same bytes.
    const time = 0;
    const date = ((2026 - 1980) << 9) | (1 << 5) | 1;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(time, 10);
    local.writeUInt16LE(date, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(0x0800, 8);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt16LE(time, 12);
    cd.writeUInt16LE(date, 14);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(body.length, 20);
    cd.writeUInt32LE(data.length, 24);
    cd.writeUInt16LE(nameBytes.length, 28);
    cd.writeUInt32LE(this.offset, 42);
    this.central.push(cd, nameBytes);
    this.out(Buffer.concat([local, nameBytes]));
    this.out(body);
    this.offset += local.length + nameBytes.length + body.length;
    this.count += 1;
  }

  finish(): void {
    const dir = Buffer.concat(this.central);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(this.count, 8);
    end.writeUInt16LE(this.count, 10);
    end.writeUInt32LE(dir.length, 12);
    end.writeUInt32LE(this.offset, 16);
    this.out(dir);
    this.out(end);
  }
}
