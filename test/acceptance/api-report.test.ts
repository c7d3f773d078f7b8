// The public surface, as reviewed: API Extractor reads the built typings of
// the two entry points (the package, and `/extension`) and compares them with
// the reports checked in under api-report/. A change of the surface fails here
// until `npm run api-report` writes the new report, so it shows in review.
// The package's own entry point stays at most 40 names.

import {expect} from '@loopback/testlab';
import {Extractor, ExtractorConfig} from '@microsoft/api-extractor';
import {readFileSync, rmSync} from 'fs';
import path from 'path';
import * as api from '../../src';

const ROOT = path.resolve(__dirname, '../../..');

describe('the API report', function () {
  this.timeout(120000);

  for (const entry of ['index', 'extension']) {
    it(`of ${entry === 'index' ? 'the package' : '/extension'} matches api-report/${entry}.api.md`, () => {
      const config = ExtractorConfig.loadFileAndPrepare(
        path.join(ROOT, `api-extractor.${entry}.json`),
      );
      const errors: string[] = [];
      rmSync(path.join(ROOT, `.tmp/api-report/${entry}.api.md`), {force: true});
      Extractor.invoke(config, {
        localBuild: false,
        // Kept out of the test's output; errors are asserted below.
        messageCallback: message => {
          if (message.logLevel === 'error') errors.push(message.text);
          message.handled = true;
        },
      });
      // The report as made now (API Extractor's temp copy) against the one
      // checked in, but for the imports of dependencies' types at its top:
      // which module declares a type (juggler's DataSource, say) moves with
      // the dependencies' versions (.ci/run's Node 24 pass installs the newest).
      const surface = (file: string) =>
        readFileSync(path.join(ROOT, file), 'utf8')
          .split('\n')
          .filter(line => !/^import .* from '[^']+';\r?$/.test(line))
          .join('\n');
      const made = surface(`.tmp/api-report/${entry}.api.md`);
      const expected = surface(`api-report/${entry}.api.md`);
      expect({
        changed: made !== expected,
        errors,
        hint: made !== expected ? 'run npm run api-report and review the change' : '',
      }).to.eql({changed: false, errors: [], hint: ''});
    });
  }

  it('keeps the package entry point at most 40 names, types included', () => {
    const report = readFileSync(path.join(ROOT, 'api-report/index.api.md'), 'utf8');
    const names = [
      ...report.matchAll(
        /^export (?:declare )?(?:abstract )?(?:class|function|const|type|interface|enum|namespace) (\w+)/gm,
      ),
    ].map(m => m[1]);
    expect(names.length).to.be.belowOrEqual(40);
    expect(names).to.containEql('MasterJobExecutorComponent');
    // the values are what src/index.ts exports at run time
    for (const value of Object.keys(api)) expect(names).to.containEql(value);
  });
});
