import { debuglog } from 'node:util';

/** Where the mapper reports decisions that change the guest. */
export interface MapperLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
}

const debug = debuglog('vfio-bars');

/** Always writes to `NODE_DEBUG=vfio-bars`; also to the VMM's logger when it gave one. */
export function mapperLog(injected: MapperLogger | undefined): MapperLogger {
  return {
    debug: (m) => { debug(m); injected?.debug(m); },
    info: (m) => { debug(m); injected?.info(m); },
    warn: (m) => { debug(`warning: ${m}`); injected?.warn(m); },
  };
}
