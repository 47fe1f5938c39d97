/**
 * Progress lines for long operations (opening a device, mapping, verifying), shown on a terminal only: a
 * pipe or a log file gets nothing, so `--json` output and CI logs stay clean. Each step overwrites the last.
 */

/** The part of a stream Progress uses (process.stderr has it). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export class Progress {
  readonly #stream: ProgressStream;
  #shown = false;

  constructor(stream: ProgressStream) {
    this.#stream = stream;
  }

  /** True when progress is displayed (the stream is a TTY). */
  get enabled(): boolean {
    return this.#stream.isTTY === true;
  }

  /** Shows `text` as the current step, replacing the previous one. */
  step(text: string): void {
    if (!this.enabled) return;
    this.#stream.write(`\r\x1b[K${text}`);
    this.#shown = true;
  }

  /** Clears the progress line before the command's own output. */
  done(): void {
    if (!this.#shown) return;
    this.#stream.write('\r\x1b[K');
    this.#shown = false;
  }
}
