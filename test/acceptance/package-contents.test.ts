// The package as npm publishes it (`npm pack`): the manual and the licence
// ship, package.json points at the repository, and every relative link of the
// README and of docs/ leads to a file in the tarball (and to a heading there,
// for a link with #anchor), so it works from node_modules and from the
// package's page, which resolves relative links against the repository.

import {expect} from '@loopback/testlab';
import {execFileSync} from 'child_process';
import {readFileSync} from 'fs';
import path from 'path';

const ROOT = path.resolve(__dirname, '../../..');

/** The files `npm pack` puts in the tarball, relative to the package root. */
function packedFiles(): Set<string> {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const [pack] = JSON.parse(out) as {files: {path: string}[]}[];
  return new Set(pack.files.map(f => f.path));
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n ? `${base}-${n}` : base);
  }
  return anchors;
}

/** Relative links `[text](target)` of a markdown text, outside code. */
function relativeLinks(markdown: string): string[] {
  const links: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) continue;
    for (const m of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!/^[a-z]+:/i.test(m[1])) links.push(m[1]);
    }
  }
  return links;
}

describe('the package as published', function () {
  this.timeout(60000);
  let files: Set<string>;

  before(() => {
    files = packedFiles();
  });

  it('ships the manual, the licence and the changelog', () => {
    for (const file of ['README.md', 'LICENSE', 'CHANGELOG.md', 'package.json']) {
      expect(files.has(file)).to.be.true();
    }
    const docs = [...files].filter(f => f.startsWith('docs/') && f.endsWith('.md'));
    expect(docs.length).to.be.above(5);
    expect(readFileSync(path.join(ROOT, 'LICENSE'), 'utf8')).to.match(/^MIT License/);
  });

  it('has a README that is a front page (at most 10,000 bytes), the manual in docs/', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'));
    expect(readme.length).to.be.belowOrEqual(10000);
    const concepts = readFileSync(path.join(ROOT, 'docs', 'concepts.md'), 'utf8');
    expect(concepts).to.match(/^## Glossary$/m);
  });

  it('names its licence, repository, homepage and issue tracker', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.license).to.equal('MIT');
    expect(pkg.repository?.url).to.match(/^git\+https:\/\/github\.com\/[^/]+\/[^/]+\.git$/);
    expect(pkg.homepage).to.match(/^https:\/\//);
    expect(pkg.bugs?.url).to.match(/^https:\/\//);
  });

  it('has every relative link of the README and docs/ lead to a shipped file and heading', () => {
    const broken: string[] = [];
    const pages = [...files].filter(f => f === 'README.md' || /^docs\/.*\.md$/.test(f));
    for (const page of pages) {
      const text = readFileSync(path.join(ROOT, page), 'utf8');
      for (const link of relativeLinks(text)) {
        const [target, anchor] = link.split('#');
        const file = target
          ? path.posix.normalize(path.posix.join(path.posix.dirname(page), target))
          : page;
        if (!files.has(file)) {
          broken.push(`${page}: ${link} (${file} is not in the tarball)`);
        } else if (anchor && file.endsWith('.md')) {
          const anchors = anchorsOf(readFileSync(path.join(ROOT, file), 'utf8'));
          if (!anchors.has(anchor)) broken.push(`${page}: ${link} (no heading #${anchor})`);
        }
      }
    }
    expect(broken).to.eql([]);
    expect(pages.length).to.be.above(5);
  });
});
