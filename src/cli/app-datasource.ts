// The app's own datasource, for `master-job-run` run from an app's root with
// neither DATABASE_URL nor --database-url: the class that `lb4 datasource`
// generates, as the app's build compiled it (dist/datasources/*.datasource.js),
// whose static `dataSourceName` is the name asked for, and its static
// `defaultConfig` as the settings. Read from the module's exports: the app is
// not booted and the class is not instantiated.

import debugFactory from 'debug';
import {existsSync, readdirSync, statSync} from 'fs';
import {createRequire} from 'module';
import path from 'path';

const debug = debugFactory('loopback:master-job-executor:cli');

/** Where `lb4 datasource` puts its classes, compiled, under the app's root. */
export const COMPILED_DATASOURCES = path.join('dist', 'datasources');
/** Where they are before the build. */
export const SOURCE_DATASOURCES = path.join('src', 'datasources');

const SUFFIX = '.datasource.js';

export interface AppDataSource {
  /** The file the class is exported from (absolute). */
  file: string;
  className: string;
  /** The class's static `defaultConfig`. */
  settings: Record<string, unknown>;
}

/** No usable datasource of that name: the message says what was looked for and why not. */
export class AppDataSourceError extends Error {}

/** `db` and `db.datasource.js` (the file `lb4 datasource db` makes) first, then by name. */
function byLikelihood(name: string) {
  const plain = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  const rank = (file: string) => (plain(file.slice(0, -SUFFIX.length)) === plain(name) ? 0 : 1);
  return (a: string, b: string) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * The datasource named `name` of the app whose root is `root`; throws an
 * AppDataSourceError naming the directory, the name and the other ways
 * (DATABASE_URL, --database-url) when there is none.
 */
export function findAppDataSource(root: string, name: string): AppDataSource {
  const dir = path.resolve(root, COMPILED_DATASOURCES);
  const wanted = `${dir}${path.sep}*${SUFFIX} has no class with static dataSourceName "${name}"`;
  const otherWays = 'Set DATABASE_URL or --database-url, or run from the root of a built app';
  const notFound = (why: string) => {
    let hint = '';
    if (existsSync(path.resolve(root, SOURCE_DATASOURCES))) {
      hint = existsSync(path.resolve(root, 'dist'))
        ? `; if ${SOURCE_DATASOURCES} has it, build the app again (npm run build)`
        : `; ${SOURCE_DATASOURCES} exists but dist does not: build the app first (npm run build)`;
    }
    return new AppDataSourceError(
      `no database: DATABASE_URL and --database-url are not set, and ${wanted} (${why}). ` +
        `${otherWays}${hint}`,
    );
  };

  let files: string[];
  try {
    if (!statSync(dir).isDirectory()) throw notFound(`${dir} is not a directory`);
    files = readdirSync(dir).filter(f => f.endsWith(SUFFIX));
  } catch (err) {
    if (err instanceof AppDataSourceError) throw err;
    throw notFound(err.code === 'ENOENT' ? `${dir} does not exist` : err.message);
  }
  if (files.length === 0) throw notFound(`no *${SUFFIX} file there`);
  files.sort(byLikelihood(name));

  const appRequire = createRequire(path.resolve(root, 'package.json'));
  const failures: string[] = [];
  for (const fileName of files) {
    const file = path.join(dir, fileName);
    let exports: Record<string, unknown>;
    try {
      exports = appRequire(file);
    } catch (err) {
      debug('cannot load %s: %s', file, err.message);
      failures.push(`${fileName} failed to load: ${err.message.split('\n')[0]}`);
      continue;
    }
    for (const [exportName, value] of Object.entries(exports ?? {})) {
      if (typeof value !== 'function') continue;
      const cls = value as {dataSourceName?: unknown; defaultConfig?: unknown; name?: string};
      if (cls.dataSourceName !== name) continue;
      const className = cls.name || exportName;
      const settings = cls.defaultConfig;
      if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
        throw new AppDataSourceError(
          `datasource "${name}": class ${className} in ${file} has no static defaultConfig ` +
            `(the settings object that lb4 datasource writes). ${otherWays}`,
        );
      }
      return {file, className, settings: {...(settings as Record<string, unknown>)}};
    }
  }
  throw notFound([`only ${files.join(', ')} there`, ...failures].join('; '));
}

/**
 * The datasource configuration with its connector module (`postgresql` ->
 * loopback-connector-postgresql) loaded from the app's root, where
 * `lb4 datasource` installed it, rather than from this package's place (npx's
 * cache, a copy of its own); left as a name, for the datasource to resolve as
 * it always does, when the app has no such module.
 */
export function withConnectorFromApp(
  root: string,
  config: Record<string, unknown>,
): Record<string, unknown> {
  const name = config.connector;
  if (typeof name !== 'string') return config;
  const appRequire = createRequire(path.resolve(root, 'package.json'));
  const id = `loopback-connector-${name}`;
  let file: string | undefined;
  try {
    file = appRequire.resolve(id);
  } catch {
    // not installed there
  }
  if (file) {
    debug('connector %s: %s', name, file);
    return {...config, connector: appRequire(id)};
  }
  debug('connector %s: not installed in %s, resolved by the datasource', name, root);
  return config;
}
