/**
 * Whether a value is immutable plain data all the way down, so the mapper may keep it without copying:
 * every object frozen, a plain object or array (no class instance, no Proxy), only data properties under
 * string keys (a getter could answer differently on every read), and leaves that are primitives.
 */
import { types } from 'node:util';

export function isFrozenPlainData(value: unknown): boolean {
  if (typeof value === 'function' || typeof value === 'symbol') return false;
  if (typeof value !== 'object' || value === null) return true;
  if (!Object.isFrozen(value) || types.isProxy(value) || !hasPlainPrototype(value)) return false;
  for (const key of Reflect.ownKeys(value)) {
    const property = Object.getOwnPropertyDescriptor(value, key)!;
    if (typeof key === 'symbol' || !('value' in property) || !isFrozenPlainData(property.value)) return false;
  }
  return true;
}

function hasPlainPrototype(value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === Array.prototype || prototype === null;
}
