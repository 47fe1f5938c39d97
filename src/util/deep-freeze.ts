/**
 * Freezes a plain-data object graph (objects, arrays, bigints, strings), children first. An object that is
 * already frozen is taken as frozen all the way down (what this function leaves behind), so freezing a
 * new plan that shares frozen BARs with an older one only walks the new objects.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  for (const child of Object.values(value)) deepFreeze(child);
  return Object.freeze(value);
}
