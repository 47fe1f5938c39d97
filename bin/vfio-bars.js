#!/usr/bin/env node
// The vfio-bars command. A relative import resolves against this file's own URL, so the package works from any
// install path (spaces, '#', '%' included) and through npm's bin symlinks.
import { main } from '../dist/cli/main.js';

main();
