/**
 * PM2 process file for bullpen (`pm2 start ecosystem.config.js`).
 *
 * package.json has "type": "module", so this file is an ES module. PM2 loads process files
 * with require(), which accepts an ES module on Node >= 20.19 / >= 22.12, and then reads
 * `apps` from the module namespace — so `apps` is a named export here (PM2 ignores
 * `export default`; the default export is for tools that import() this file).
 * The definition itself, with its documentation, lives in ecosystem.config.cjs; on an older
 * Node use `pm2 start ecosystem.config.cjs` instead.
 */
import config from './ecosystem.config.cjs';

export const apps = config.apps;
export default config;
