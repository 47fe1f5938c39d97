import { debuglog } from 'node:util';

/** Where the mapper reports decisions that change the guest. */
export interface MapperLogger {
  /** Detail: each slot and mmap. */
  debug(message: string): void;
  /** Decisions: a BAR mapped, moved, decode toggled. */
  info(message: string): void;
  /** Something a user may not expect: a BAR left trapped, a huge-PFN misalignment. */
  warn(message: string): void;
}

const debug = debuglog('vfio-bars');

/** The mapper's own log: a MapperLogger that also says whether anyone reads it. */
export interface MapperLog extends MapperLogger {
  /**
   * False when neither `NODE_DEBUG=vfio-bars` nor an injected logger would receive a message: callers
   * skip building detail messages then (a map of many mappings formats several hex strings for each).
   */
  readonly enabled: boolean;
}

/**
 * Always writes to `NODE_DEBUG=vfio-bars`; also to the VMM's logger when it gave one. A logger that throws
 * is ignored (noted on the debug log): reporting must never change what the mapper holds.
 */
export function mapperLog(injected: MapperLogger | undefined): MapperLog {
  const forward = (level: keyof MapperLogger, message: string): void => {
    try {
      injected?.[level](message);
    } catch (error) {
      debug(`the injected logger threw on ${level} (ignored): ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  return {
    get enabled() {
      return injected !== undefined || debug.enabled;
    },
    debug: (m) => { debug(m); forward('debug', m); },
    info: (m) => { debug(m); forward('info', m); },
    warn: (m) => { debug(`warning: ${m}`); forward('warn', m); },
  };
}
