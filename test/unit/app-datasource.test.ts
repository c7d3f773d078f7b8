// How `master-job-run` finds an app's own datasource (no database needed):
// the compiled class of `lb4 datasource` by its static dataSourceName, its
// defaultConfig with the cluster's bounds under it, and what it says when
// there is none.

import {expect} from '@loopback/testlab';
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'fs';
import {tmpdir} from 'os';
import path from 'path';
import {
  AppDataSourceError,
  findAppDataSource,
  withConnectorFromApp,
} from '../../src/cli/app-datasource';
import {dataSourceConfigFromSettings} from '../../src/cli/database-url';

describe('master-job-run: the app datasource', () => {
  let root: string;
  let dir: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'mje-app-ds-'));
    dir = path.join(root, 'dist', 'datasources');
    mkdirSync(dir, {recursive: true});
  });
  afterEach(() => rmSync(root, {recursive: true, force: true}));

  /** A compiled datasource module (no imports: only its exports matter here). */
  function write(file: string, className: string, statics: string): void {
    writeFileSync(
      path.join(dir, file),
      `class ${className} {}\n${statics}\nexports.${className} = ${className};\n`,
    );
  }

  it('finds the class by its dataSourceName, whatever its file is called, and copies its defaultConfig', () => {
    write('db.datasource.js', 'DbDataSource', `DbDataSource.dataSourceName = 'db';`);
    write(
      'my-store.datasource.js',
      'MyStoreDataSource',
      `MyStoreDataSource.dataSourceName = 'myStore';
       MyStoreDataSource.defaultConfig = {name: 'myStore', connector: 'mysql', host: 'h'};`,
    );
    const found = findAppDataSource(root, 'myStore');
    expect(found).to.eql({
      file: path.join(dir, 'my-store.datasource.js'),
      className: 'MyStoreDataSource',
      settings: {name: 'myStore', connector: 'mysql', host: 'h'},
    });
  });

  it('says what it looked for: the directory, the name, the files there, those that failed to load', () => {
    write('db.datasource.js', 'DbDataSource', `DbDataSource.dataSourceName = 'db';`);
    writeFileSync(path.join(dir, 'broken.datasource.js'), `throw new Error('boom');`);
    writeFileSync(path.join(dir, 'index.js'), `exports.x = 1;`);
    expect(() => findAppDataSource(root, 'other')).to.throw(AppDataSourceError);
    expect(() => findAppDataSource(root, 'other')).to.throw(
      `no database: DATABASE_URL and --database-url are not set, and ${dir}${path.sep}` +
        `*.datasource.js has no class with static dataSourceName "other" ` +
        `(only broken.datasource.js, db.datasource.js there; broken.datasource.js failed to ` +
        `load: boom). Set DATABASE_URL or --database-url, or run from the root of a built app`,
    );
  });

  it('hints at a build when src/datasources exists, and names a class without defaultConfig', () => {
    rmSync(path.join(root, 'dist'), {recursive: true});
    mkdirSync(path.join(root, 'src', 'datasources'), {recursive: true});
    expect(() => findAppDataSource(root, 'db')).to.throw(
      /does not exist\)\. .*; src\/datasources exists but dist does not: build the app first \(npm run build\)$/,
    );
    mkdirSync(dir, {recursive: true});
    expect(() => findAppDataSource(root, 'db')).to.throw(
      /\(no \*\.datasource\.js file there\)\. .*; if src\/datasources has it, build the app again/,
    );
    write('db.datasource.js', 'DbDataSource', `DbDataSource.dataSourceName = 'db';`);
    expect(() => findAppDataSource(root, 'db')).to.throw(
      /class DbDataSource in .*db\.datasource\.js has no static defaultConfig/,
    );
  });

  it('puts the settings over the bounds, and refuses a connector other than postgresql or mysql', () => {
    expect(
      dataSourceConfigFromSettings({
        name: 'db',
        connector: 'loopback-connector-postgresql',
        host: 'h',
        query_timeout: 3000,
      }),
    ).to.eql({
      max: 10,
      connectionTimeoutMillis: 5000,
      query_timeout: 3000,
      name: 'db',
      connector: 'postgresql',
      host: 'h',
    });
    expect(dataSourceConfigFromSettings({connector: 'mysql'})).to.containEql({
      collation: 'utf8mb4_unicode_ci',
    });
    expect(dataSourceConfigFromSettings({connector: 'mysql', charset: 'latin1'})).to.not.have.key(
      'collation',
    );
    expect(() => dataSourceConfigFromSettings({connector: 'memory'})).to.throw(
      'connector must be "postgresql" or "mysql", got "memory"',
    );
  });

  it("loads the connector from the app's node_modules, else leaves its name", () => {
    const connector = path.join(root, 'node_modules', 'loopback-connector-postgresql');
    mkdirSync(connector, {recursive: true});
    writeFileSync(path.join(connector, 'index.js'), `exports.fromTheApp = true;`);
    expect(withConnectorFromApp(root, {connector: 'postgresql'}).connector).to.eql({
      fromTheApp: true,
    });
    const elsewhere = mkdtempSync(path.join(tmpdir(), 'mje-no-app-'));
    try {
      expect(withConnectorFromApp(elsewhere, {connector: 'mysql'}).connector).to.equal('mysql');
    } finally {
      rmSync(elsewhere, {recursive: true, force: true});
    }
  });
});
