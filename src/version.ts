import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** The package version, shown in the OpenAPI document and logs. */
export const APP_VERSION: string = (require('../package.json') as { version: string }).version;
