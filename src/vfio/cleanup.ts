/** Moved to src/util/undo-stack.ts (every layer uses it); re-exported so older import paths keep working. */
export { UndoStack } from '../util/undo-stack.js';
