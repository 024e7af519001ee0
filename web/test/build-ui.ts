/** tap `before`: builds the web UI once, when there is no build yet, before the test files run. */
import { ensureBuilt } from './build.js';

ensureBuilt();
