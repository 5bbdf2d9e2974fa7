/**
 * Bounded reads of files named by callers: image paths and the JSON files of a model folder. A
 * path may name anything — a FIFO (a plain open() would block until a writer appears, and the
 * blocked libuv thread then keeps the process from exiting), a device such as /dev/zero (endless),
 * a directory, or a huge file — so every such read goes through here: open without blocking,
 * fstat the open descriptor (no race between the check and the read), accept only a regular file
 * of at most `maxBytes`, and read no more than the size fstat reported.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** What went wrong, for the caller to turn into its own error code. */
export type ReadProblem = 'missing' | 'unreadable' | 'not-a-file' | 'too-large';

/**
 * Throws the caller's error for a problem. `message` does not name the file (the caller says what
 * it is: "image 3 (cat.jpg)", "config.json"): it reads "is not a regular file (a FIFO)" and the like.
 * `cause` is the system error, when there is one.
 */
export type ReadFail = (problem: ReadProblem, message: string, cause?: unknown) => never;

/** config.json and preprocessor_config.json: real ones are a few KiB (id2label for 21k classes ~1 MiB). */
export const MAX_CONFIG_JSON_BYTES = 16 * 2 ** 20;
/** A sharded checkpoint's .index.json; the same limit as the native reader's (checkpoint.cc kMaxIndexBytes). */
export const MAX_INDEX_JSON_BYTES = 100_000_000;

// O_NONBLOCK makes opening a FIFO return at once (fstat then refuses it); for a regular file it
// changes nothing. Windows has no such flag and no FIFOs in the file system.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** An open regular file of at most the given size; close it with {@link BoundedFile.close}. */
export class BoundedFile {
  private constructor(
    private readonly handle: FileHandle,
    /** The size fstat reported when the file was opened; reads never go past it. */
    readonly size: number,
  ) {}

  static async open(file: string, maxBytes: number, fail: ReadFail): Promise<BoundedFile> {
    let handle: FileHandle;
    try {
      handle = await open(file, OPEN_FLAGS);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') fail('missing', 'does not exist', e);
      if (code === 'EISDIR') fail('not-a-file', 'is not a regular file (a directory)', e);
      fail('unreadable', `cannot be opened: ${(e as Error).message}`, e);
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) fail('not-a-file', `is not a regular file (${kind(st)})`);
      if (st.size > maxBytes) fail('too-large', `is ${st.size} bytes, more than the limit of ${maxBytes}`);
      return new BoundedFile(handle, st.size);
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Bytes [0, size): `head` (bytes already read from the start) is copied, the rest is read. A file
   * that shrank since it was opened gives fewer bytes; one that grew is read only up to `size`.
   */
  async readAll(fail: ReadFail, head?: Buffer): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(this.size);
    let n = head ? head.copy(buf) : 0;
    n += await this.readInto(buf, n, fail);
    return n === buf.length ? buf : buf.subarray(0, n);
  }

  /** At most `length` bytes from the start (fewer when the file is shorter). */
  async readHead(length: number, fail: ReadFail): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(Math.min(length, this.size));
    const n = await this.readInto(buf, 0, fail);
    return buf.subarray(0, n);
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  // Fills buf from `offset` (also the file position) until it is full or the file ends.
  private async readInto(buf: Buffer, offset: number, fail: ReadFail): Promise<number> {
    let pos = offset;
    try {
      while (pos < buf.length) {
        const { bytesRead } = await this.handle.read(buf, pos, buf.length - pos, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
      }
    } catch (e) {
      fail('unreadable', `cannot be read: ${(e as Error).message}`, e);
    }
    return pos - offset;
  }
}

function kind(st: import('node:fs').Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/** The whole of `file`, a regular file of at most `maxBytes`. */
export async function readBoundedFile(file: string, maxBytes: number, fail: ReadFail): Promise<Buffer> {
  const f = await BoundedFile.open(file, maxBytes, fail);
  try {
    return await f.readAll(fail);
  } finally {
    await f.close();
  }
}

/** {@link readBoundedFile} as UTF-8 text (a leading BOM is kept, as readFile(…, 'utf8') keeps it). */
export async function readBoundedText(file: string, maxBytes: number, fail: ReadFail): Promise<string> {
  return (await readBoundedFile(file, maxBytes, fail)).toString('utf8');
}

/** {@link readBoundedText} for an optional file: undefined when it does not exist. */
export async function readOptionalText(file: string, maxBytes: number, fail: ReadFail): Promise<string | undefined> {
  const absent = {};
  try {
    return await readBoundedText(file, maxBytes, (problem, message, cause) => {
      if (problem === 'missing') throw absent;
      return fail(problem, message, cause);
    });
  } catch (e) {
    if (e === absent) return undefined;
    throw e;
  }
}
