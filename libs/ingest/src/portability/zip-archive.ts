import { crc32 } from 'node:zlib';
import * as yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';

/** An entry that cannot be read (corrupt, encrypted, too large): recorded with its reason, the others go on. */
export class ArchiveEntryError extends Error {}

/**
 * A zip read entry by entry (yauzl): only the central directory is held (names, sizes, offsets);
 * each entry is read when asked, decompressed and checked against its CRC-32 (yauzl checks sizes,
 * not checksums), so a damaged entry is named and never filed half-read.
 */
export class ZipArchive {
  private constructor(
    private readonly zip: ZipFile,
    private readonly entries: Map<string, Entry>,
  ) {}

  /** Opens a zip file on disk; throws when its central directory cannot be read. */
  static async open(path: string): Promise<ZipArchive> {
    return ZipArchive.index(await yauzl.openPromise(path, { lazyEntries: true, autoClose: false }));
  }

  /** Opens a zip held in memory (a patient's XDM inside the archive). */
  static async fromBuffer(buffer: Buffer): Promise<ZipArchive> {
    return ZipArchive.index(await yauzl.fromBufferPromise(buffer, { lazyEntries: true, autoClose: false }));
  }

  private static async index(zip: ZipFile): Promise<ZipArchive> {
    const entries = new Map<string, Entry>();
    try {
      for await (const entry of zip.eachEntry()) {
        entries.set(entry.fileName, entry);
      }
    } catch (err) {
      zip.close();
      throw err;
    }
    return new ZipArchive(zip, entries);
  }

  /** Entry names in central-directory order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Reads one entry whole (documents are small next to the archive); at most maxBytes. */
  async read(name: string, maxBytes: number): Promise<Buffer> {
    const entry = this.entries.get(name);
    if (!entry) {
      throw new ArchiveEntryError('entry missing from the archive directory');
    }
    if (entry.isEncrypted()) {
      throw new ArchiveEntryError('encrypted zip entry');
    }
    if (entry.uncompressedSize > maxBytes) {
      throw new ArchiveEntryError(`entry of ${entry.uncompressedSize} bytes, over the limit of ${maxBytes}`);
    }
    let data: Buffer;
    try {
      const stream = await this.zip.openReadStreamPromise(entry);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) {
        chunks.push(chunk as Buffer);
      }
      data = Buffer.concat(chunks);
    } catch (err) {
      throw new ArchiveEntryError(`unreadable zip entry: ${(err as Error).message}`);
    }
    if (crc32(data) >>> 0 !== entry.crc32 >>> 0) {
      throw new ArchiveEntryError('zip entry fails its CRC-32 check (damaged archive)');
    }
    return data;
  }

  close(): void {
    this.zip.close();
  }
}
