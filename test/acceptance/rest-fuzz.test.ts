// Fuzzes the REST control (docs/rest-control.md) on the memory connector and
// on PostgreSQL: a few thousand malformed requests (wrong content types, bad
// JSON, wrong types, control characters, lone surrogates, huge values,
// prototype-pollution bodies, broken form encodings, odd query strings and
// Accept headers), valid ones mixed in. No answer may be a 5xx (or no answer
// at all); every 4xx must be an error body with a message, in JSON unless the
// client asked for HTML/XML.
//
// Sent with node's http client, not supertest, so that the bytes, the headers
// (or their absence) and the path are exactly what was generated.
//
// Environment:
//   MJE_FUZZ_SEED=<n>     replay a run (fast-check prints the seed on failure)
//   MJE_FUZZ_RUNS=<n>     requests per backend (default 3000)
//   MJE_FUZZ_SURVEY=1     do not stop at the first bad answer: run all requests,
//                         then fail with every distinct bad answer, grouped, and
//                         print the statuses seen per input class

import {RepositoryMixin} from '@loopback/repository';
import {RestApplication} from '@loopback/rest';
import {createRestAppClient} from '@loopback/testlab';
import fc from 'fast-check';
import http from 'http';
import zlib from 'zlib';
import {MasterJobExecutorBindings, MasterJobExecutorComponent} from '../../src';
import {MasterControlRepository, MasterLockRepository} from '../../src/extension';
import {BackendName, openTestDatabase, TestDatabase} from '../fixtures/databases';

class App extends RepositoryMixin(RestApplication) {}

const BASE = '/api/MasterControls';
const KNOWN = 'FUZZ-KNOWN';
const RUNS = Number(process.env.MJE_FUZZ_RUNS ?? 3000);
const SURVEY = process.env.MJE_FUZZ_SURVEY === '1';
const FORM = 'application/x-www-form-urlencoded';
const JSON_TYPE = 'application/json';

// ---- requests ----

interface FuzzRequest {
  /** Input classes, for the failure message and the survey. */
  tags: string[];
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /**
   * false when the client asked for HTML or XML (Accept, `?_format=`): the
   * error writer of LoopBack may then answer in that format.
   */
  jsonErrors: boolean;
  /** A valid request: it must get a 200. */
  valid?: boolean;
}

interface FuzzResponse {
  status?: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Set when there was no HTTP answer (reset, timeout). */
  error?: string;
}

function clip(s: string, max = 400): string {
  return s.length > max ? `${s.slice(0, max)}... (${s.length} chars)` : s;
}

function describeRequest(req: FuzzRequest): string {
  const body =
    req.body === undefined
      ? '(none)'
      : Buffer.isBuffer(req.body)
        ? `<${req.body.length} bytes> ${clip(JSON.stringify(req.body.toString('latin1')))}`
        : clip(JSON.stringify(req.body));
  return [
    `${req.method} ${clip(req.path, 300)}`,
    `  headers: ${JSON.stringify(req.headers)}`,
    `  body: ${body}`,
    `  classes: ${req.tags.join(' | ')}`,
  ].join('\n');
}

function describeResponse(res: FuzzResponse): string {
  if (res.error) return `no HTTP answer: ${res.error}`;
  return `${res.status} ${res.headers['content-type'] ?? '(no content-type)'} ${clip(res.text, 600)}`;
}

function request(r: Omit<FuzzRequest, 'jsonErrors'> & {jsonErrors?: boolean}): FuzzRequest {
  const req: FuzzRequest = {jsonErrors: true, ...r};
  // fast-check prints a counterexample with this (bodies can be 1 MB).
  Object.defineProperty(req, fc.toStringMethod, {value: () => describeRequest(req)});
  return req;
}

/** encodeURIComponent, but lone surrogates go as the UTF-8 of U+FFFD (as a browser would). */
function enc(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return [...Buffer.from(s, 'utf8')].map(b => '%' + b.toString(16).padStart(2, '0')).join('');
  }
}

function hex(c: string): string {
  return 'U+' + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
}

// ---- values ----

interface Labeled<T> {
  tag: string;
  value: T;
}

function lab<T>(tag: string, arb: fc.Arbitrary<T>): fc.Arbitrary<Labeled<T>> {
  return arb.map(value => ({tag, value}));
}

const CONTROL = [...Array.from({length: 32}, (_, i) => String.fromCharCode(i)), '\u007f'];
const C1 = ['\u0080', '\u0085', '\u009b', '\u009f'];
const WHITESPACE = [' ', '\t', '\n', '\r', '\u000b', '\f', '\u00a0', '\u2003', '\u3000', '\ufeff'];
const LONE_SURROGATES = [
  '\ud800',
  '\udbff',
  '\udc00',
  '\udfff',
  'a\ud83d',
  '\ude00b',
  '\udc00\ud800',
];
const UNICODE = [
  '😀',
  '👩‍👩‍👧‍👦',
  '🇫🇷',
  '\u202eRTL-OVERRIDE',
  'שלום',
  'مرحبا',
  'e\u0301',
  'a\u0300\u0301\u0302\u0303',
  'zero\u200bwidth',
  '\u2028',
  '\u2029',
  'İı',
  'ß',
  'ﬀ',
  '\uffff',
  '\ufffd',
  '𝕏',
  '日本語',
];
const OBJECT_NAMES = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'prototype',
  'valueOf',
  '__defineGetter__',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
];
const SQLISH = [
  "'; DROP TABLE x; --",
  "' OR '1'='1",
  '%',
  '_',
  '%_%',
  '\\',
  '\\\\',
  "\\'",
  '"',
  '`',
  '$1',
  '?',
  ':name',
  'NULL',
  '*',
  '.*',
  '(',
  '[a-',
  '${x}',
  '{{x}}',
  '%s%n%x',
];

const plainName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,39}$/);
const validName = fc.oneof(fc.constantFrom(KNOWN, 'JOB-SCHEDULER', 'FUZZ-OTHER'), plainName);
const validReason = fc.oneof(
  fc.constantFrom('testing', 'maintenance window', 'x'),
  fc.string({minLength: 1, maxLength: 60, unit: 'grapheme-ascii'}).filter(s => /\S/.test(s)),
);

/** Characters repeated into long strings: one, two or four UTF-8 bytes, two code points. */
const REPEATED: [string, string][] = [
  ['x', 'x'],
  ['space', ' '],
  ['U+00E9', '\u00e9'],
  ['emoji U+1F600', '😀'],
  ['e+U+0301', 'e\u0301'],
];

/** A string in the middle, at the start or at the end of a valid name. */
function embedded(tag: string, parts: string[]): fc.Arbitrary<Labeled<string>> {
  return fc
    .tuple(validName, fc.constantFrom(...parts), fc.constantFrom('mid', 'start', 'end', 'alone'))
    .map(([name, part, where]) => ({
      tag,
      value:
        where === 'mid'
          ? name.slice(0, 1) + part + name.slice(1)
          : where === 'start'
            ? part + name
            : where === 'end'
              ? name + part
              : part,
    }));
}

/** Strings that may go in lockName or reason, in JSON or a form. */
function stringValue(valid: fc.Arbitrary<string>): fc.Arbitrary<Labeled<string>> {
  return fc.oneof(
    {weight: 12, arbitrary: lab('valid', valid)},
    lab('empty string', fc.constant('')),
    lab(
      'whitespace-only',
      fc.string({unit: fc.constantFrom(...WHITESPACE), minLength: 1, maxLength: 10}),
    ),
    fc
      .tuple(fc.integer({min: 256, max: 5000}), fc.constantFrom(...REPEATED, ['NUL', '\u0000']))
      .map(([n, [what, c]]) => ({tag: `huge (${what} repeated)`, value: c.repeat(n)})),
    lab('huge random', fc.string({minLength: 1000, maxLength: 5000, unit: 'binary', size: 'max'})),
    // around the limits of lockName (255) and reason (1000), in code points
    fc
      .tuple(fc.constantFrom(254, 255, 256, 999, 1000, 1001), fc.constantFrom(...REPEATED))
      .map(([n, [what, c]]) => ({tag: `length ${n} of ${what}`, value: c.repeat(n)})),
    {
      weight: 4,
      arbitrary: embedded('control char', CONTROL).map(v => ({
        tag: `control char ${hex([...v.value].find(c => CONTROL.includes(c))!)}`,
        value: v.value,
      })),
    },
    embedded('C1 control char', C1),
    {weight: 2, arbitrary: embedded('lone surrogate', LONE_SURROGATES)},
    {weight: 2, arbitrary: embedded('unicode', UNICODE)},
    {weight: 2, arbitrary: lab('Object.prototype name', fc.constantFrom(...OBJECT_NAMES))},
    {weight: 2, arbitrary: embedded('SQL-ish', SQLISH)},
    lab('random string', fc.string({maxLength: 40, unit: 'binary'})),
    lab('random graphemes', fc.string({maxLength: 40, unit: 'grapheme'})),
    lab(
      'trailing/leading space',
      validName.map(n => ` ${n} `),
    ),
  );
}

const nameValue = stringValue(validName);
const reasonValue = stringValue(validReason);

/** JSON values of a wrong type for a string field. */
const wrongType: fc.Arbitrary<Labeled<unknown>> = fc.oneof(
  lab('type integer', fc.oneof(fc.integer(), fc.constantFrom(0, -1, 2 ** 53, 1e21))),
  lab('type double', fc.double({noNaN: true, noDefaultInfinity: true})),
  lab('type boolean', fc.boolean()),
  lab('type null', fc.constant(null)),
  lab('type array', fc.array(fc.oneof(validName, fc.integer()), {maxLength: 3})),
  lab(
    'type object',
    fc.oneof(
      fc.dictionary(fc.string({maxLength: 8}), fc.string({maxLength: 8}), {maxKeys: 3}),
      fc.constantFrom({toString: 'x'}, {length: 5}, {valueOf: 1}, {$ne: null}, {'': ''}),
    ),
  ),
  lab('type nested JSON', fc.jsonValue({maxDepth: 3})),
);

const jsonFieldValue: fc.Arbitrary<Labeled<unknown>> = fc.oneof(
  {weight: 4, arbitrary: nameValue},
  {weight: 1, arbitrary: wrongType},
);
const jsonReasonValue: fc.Arbitrary<Labeled<unknown>> = fc.oneof(
  {weight: 4, arbitrary: reasonValue},
  {weight: 1, arbitrary: wrongType},
);

const EXTRA_KEYS = [
  'force',
  'enabled',
  'id',
  'known',
  'changed',
  'updatedBy',
  'updatedAt',
  'lockname',
  'LockName',
  'lockName ',
  ' lockName',
  '',
  '\u0000',
  '😀',
  ...OBJECT_NAMES,
];

// ---- request classes ----

/** Accept headers; `json` false where LoopBack's error writer then picks HTML or XML. */
const ACCEPTS: {value: string; json: boolean}[] = [
  {value: 'application/json', json: true},
  {value: '*/*', json: true},
  {value: 'application/*', json: true},
  {value: 'application/json, text/html', json: true},
  {value: 'text/plain', json: true},
  {value: 'image/png', json: true},
  {value: '', json: true},
  {value: 'garbage;;;q=', json: true},
  {value: 'application/json;q=0', json: true},
  {value: '*/*;q=0', json: true},
  {value: 'application/vnd.api+json', json: true},
  {value: 'text/html', json: false},
  {value: 'text/*', json: false},
  {value: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', json: false},
  {value: 'application/xml', json: false},
  {value: 'text/xml', json: false},
  {value: 'application/json;q=0.1, text/html', json: false},
];

const acceptHeader = fc.option(fc.constantFrom(...ACCEPTS), {freq: 3, nil: undefined});

/** Query strings: `json` false where `_format` asks for HTML or XML. */
const queryString: fc.Arbitrary<{tag: string; value: string; json: boolean}> = fc.oneof(
  fc
    .constantFrom(
      '?',
      '?a=1',
      '?filter=%7B%22where%22%3A%7B%22lockName%22%3A%7B%22regexp%22%3A%22(%22%7D%7D%7D',
      '?filter[where][lockName]=x',
      '?%zz',
      '?a=%zz',
      '?a=%',
      '?a=%E0%A4%A',
      '?a=%00',
      '?a=%ED%A0%80',
      '?a[b][c][d][e][f][g]=1',
      '?__proto__[polluted]=1',
      '?constructor[prototype][polluted]=1',
      '?__proto__=x',
      '?lockName=x&lockName=y',
      '?_format=bogus',
      '?_format[]=xml',
      '?_format=json',
      '?&&&',
      '?=',
      '?a==b',
      '?' + 'a=1&'.repeat(1500),
      '?a=' + 'x'.repeat(4000),
    )
    .map(value => ({tag: `query ${clip(value, 40)}`, value, json: true})),
  fc
    .constantFrom('?_format=xml', '?_format=html', '?a=1&_format=xml')
    .map(value => ({tag: `query ${value}`, value, json: false})),
  fc
    .string({maxLength: 30, unit: 'binary'})
    .map(s => ({tag: 'query random', value: `?q=${enc(s)}`, json: true})),
);

function serializeEntries(entries: [string, unknown][]): string {
  return (
    '{' +
    entries
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)
      .join(',') +
    '}'
  );
}

const action = fc.constantFrom('disable', 'enable');

const JSON_TYPES = [
  'application/json; charset=utf-8',
  'application/json;charset=UTF-8',
  'APPLICATION/JSON',
  'application/vnd.api+json',
  'application/merge-patch+json',
  'application/json; charset=latin1',
  'application/json; charset=bogus',
  'application/json; charset=utf-16le',
  'application/json; foo',
  'application/json;;;',
];
const jsonContentType = fc.oneof(
  {weight: 12, arbitrary: fc.constant(JSON_TYPE)},
  {weight: 2, arbitrary: fc.constantFrom(...JSON_TYPES)},
);

function post(
  tags: string[],
  act: string,
  contentType: string | undefined,
  body: string | Buffer | undefined,
): FuzzRequest {
  const headers: Record<string, string> = {};
  if (contentType !== undefined) headers['Content-Type'] = contentType;
  return request({tags, method: 'POST', path: `${BASE}/${act}`, headers, body});
}

/** Valid requests: these must succeed. */
const validRequest: fc.Arbitrary<FuzzRequest> = fc
  .oneof(
    fc.tuple(action, validName, validReason, fc.boolean()).map(([act, name, reason, form]) => {
      const fields: [string, string][] =
        act === 'disable'
          ? [
              ['lockName', name],
              ['reason', reason],
            ]
          : [['lockName', name]];
      return form
        ? post([`valid ${act} form`], act, FORM, fields.map(([k, v]) => `${k}=${enc(v)}`).join('&'))
        : post([`valid ${act} json`], act, JSON_TYPE, JSON.stringify(Object.fromEntries(fields)));
    }),
    fc
      .constantFrom('', '/status', '/health')
      .map(p =>
        request({tags: [`valid GET ${p || '/'}`], method: 'GET', path: BASE + p, headers: {}}),
      ),
    fc
      .tuple(action, validName)
      .map(([act, name]) =>
        post(
          [`valid ${act} gzip json`],
          act,
          JSON_TYPE,
          zlib.gzipSync(
            JSON.stringify(act === 'disable' ? {lockName: name, reason: 'gz'} : {lockName: name}),
          ),
        ),
      )
      .map(req => {
        req.headers['Content-Encoding'] = 'gzip';
        return req;
      }),
  )
  .map(req => {
    req.valid = true;
    return req;
  });

/** JSON objects with wrong, missing, extra or duplicate fields. */
const jsonFieldsRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    act: action,
    lockName: fc.option(jsonFieldValue, {freq: 10, nil: undefined}),
    reason: fc.option(jsonReasonValue, {freq: 10, nil: undefined}),
    reasonOnEnable: fc.boolean(),
    extras: fc.oneof(
      {weight: 5, arbitrary: fc.constant<[string, unknown, string][]>([])},
      fc.array(
        fc
          .tuple(
            fc.constantFrom(...EXTRA_KEYS),
            fc.oneof(fc.boolean(), validName, fc.constant(null), fc.constant({polluted: true})),
          )
          .map(([k, v]): [string, unknown, string] => [k, v, `extra key ${JSON.stringify(k)}`]),
        {minLength: 1, maxLength: 2},
      ),
      fc.array(
        fc
          .tuple(fc.constantFrom('lockName', 'reason'), jsonFieldValue)
          .map(([k, v]): [string, unknown, string] => [k, v.value, `duplicate key ${k}`]),
        {minLength: 1, maxLength: 2},
      ),
    ),
    contentType: jsonContentType,
  })
  .map(({act, lockName, reason, reasonOnEnable, extras, contentType}) => {
    const entries: [string, unknown][] = [];
    const tags = [`${act} json`];
    if (contentType !== JSON_TYPE) tags.push(`content-type ${contentType}`);
    if (lockName) entries.push(['lockName', lockName.value]);
    tags.push(`lockName: ${lockName ? lockName.tag : 'missing'}`);
    if (act === 'disable' || reasonOnEnable) {
      if (reason) entries.push(['reason', reason.value]);
      tags.push(
        `reason${act === 'enable' ? ' on enable' : ''}: ${reason ? reason.tag : 'missing'}`,
      );
    }
    for (const [key, value, tag] of extras) {
      entries.push([key, value]);
      tags.push(tag);
    }
    return post(tags, act, contentType, serializeEntries(entries));
  });

/** Bodies that are not a JSON object. */
const jsonTopLevelRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    action,
    fc.oneof(
      lab(
        'array of a body',
        validName.map(n => JSON.stringify([{lockName: n, reason: 'r'}])),
      ),
      lab(
        'string',
        validName.map(n => JSON.stringify(n)),
      ),
      lab('number', fc.integer().map(String)),
      lab('null', fc.constant('null')),
      lab('boolean', fc.constantFrom('true', 'false')),
      lab('empty array', fc.constant('[]')),
      // valid JSON, deeper than JSON.stringify can go
      lab(
        'deep array',
        fc.integer({min: 100, max: 20000}).map(n => '['.repeat(n) + ']'.repeat(n)),
      ),
      lab(
        'deep object',
        fc
          .integer({min: 100, max: 20000})
          .map(n => '{"lockName":'.repeat(n) + '"x"' + '}'.repeat(n)),
      ),
    ),
  )
  .map(([act, v]) => post([`${act} json`, `top-level ${v.tag}`], act, JSON_TYPE, v.value));

const INVALID_JSON = [
  '',
  ' ',
  '\n\t',
  '{',
  '}',
  '[',
  'null x',
  '{"lockName":}',
  '{"lockName":"x",}',
  "{'lockName':'x','reason':'y'}",
  '{lockName:"x",reason:"y"}',
  '{"lockName":NaN,"reason":"y"}',
  '{"lockName":Infinity,"reason":"y"}',
  '{"lockName":undefined}',
  '{"lockName":"x"}garbage',
  '{"lockName":"x"}{"lockName":"y"}',
  '\ufeff{"lockName":"x","reason":"y"}',
  '/* c */{"lockName":"x","reason":"y"}',
  '{"lockName":"x" // c\n}',
  '{"lockName":"\\u00"}',
  '{"lockName":"\\x41"}',
  '{"lockName":"\\q"}',
  '{"lockName":"a\u0000b","reason":"y"}',
  '{"lockName":"a\nb","reason":"y"}',
  '{"lockName":"x","reason":"y"',
  '{"lockName":0x10}',
  '{"lockName":01}',
  '{"lockName":1e999,"reason":"y"}',
  '{"lockName":-}',
  '"unterminated',
  'lockName=x&reason=y',
  '<lockName>x</lockName>',
  '{"a":'.repeat(3000),
  '['.repeat(5000),
];

const invalidJsonRequest: fc.Arbitrary<FuzzRequest> = fc.oneof(
  fc
    .tuple(action, fc.constantFrom(...INVALID_JSON))
    .map(([act, body]) =>
      post([`${act} json`, `invalid JSON ${clip(JSON.stringify(body), 40)}`], act, JSON_TYPE, body),
    ),
  // a valid body cut anywhere
  fc.tuple(action, validName, fc.nat()).map(([act, name, cut]) => {
    const full = JSON.stringify({lockName: name, reason: 'r'});
    return post(
      [`${act} json`, 'invalid JSON: truncated'],
      act,
      JSON_TYPE,
      full.slice(0, cut % full.length),
    );
  }),
  // bytes that are not UTF-8 inside a string
  fc
    .tuple(
      action,
      fc.uint8Array({minLength: 1, maxLength: 8}).map(a => a.map(b => b | 0x80)),
    )
    .map(([act, bytes]) =>
      post(
        [`${act} json`, 'invalid UTF-8 in a string'],
        act,
        JSON_TYPE,
        Buffer.concat([
          Buffer.from('{"lockName":"A'),
          Buffer.from(bytes),
          Buffer.from('","reason":"y"}'),
        ]),
      ),
    ),
  fc
    .tuple(action, fc.uint8Array({maxLength: 300}))
    .map(([act, bytes]) =>
      post([`${act} json`, 'random bytes'], act, JSON_TYPE, Buffer.from(bytes)),
    ),
);

const POLLUTION = [
  '{"__proto__":{"lockName":"P","reason":"p","polluted":1}}',
  '{"lockName":"P","reason":"p","__proto__":{"polluted":1}}',
  '{"lockName":"P","__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}},"lockName":"P","reason":"p"}',
  '{"lockName":"P","reason":"p","constructor":{"prototype":{"polluted":1}}}',
  '{"lockName":{"__proto__":{"length":5}},"reason":"p"}',
  '{"lockName":{"constructor":{"prototype":{"polluted":1}}},"reason":"p"}',
  '{"lockName":"P","reason":{"toString":"boom","valueOf":"boom"}}',
  '{"lockName":["__proto__"],"reason":"p"}',
  '{"__proto__":null}',
  '{"__proto__":[]}',
  '{"lockName":"__proto__","reason":"__proto__"}',
  '{"lockName":"constructor"}',
  '{"lockName":"hasOwnProperty","reason":"toString"}',
];

const pollutionRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(action, fc.constantFrom(...POLLUTION))
  .map(([act, body]) => post([`${act} json`, `prototype pollution ${body}`], act, JSON_TYPE, body));

const FORM_ODDITIES = [
  'lockName=b',
  'lockName=a&lockName=b',
  'lockName[]=a',
  'lockName[x]=a',
  'lockName[0]=a',
  'lockName[0][1]=a',
  'reason[]=a',
  'reason[a][b]=c',
  'a[b][c][d][e][f][g][h][i][j]=1',
  'lockName' + '[a]'.repeat(30) + '=1',
  '__proto__[polluted]=1',
  '__proto__[lockName]=P',
  'constructor[prototype][polluted]=1',
  '__proto__=x',
  'lockName[__proto__]=x',
  'toString=x',
  'hasOwnProperty=x',
  'constructor=x',
  'force=true',
  '%zz=1',
  'lockName=%zz',
  'lockName=%',
  'lockName=%2',
  'lockName=%E0%A4%A',
  'lockName=%FF',
  'lockName=%ED%A0%80',
  'lockName=a%00b',
  'lockName=%00',
  'lockName=%C0%80',
  'lockName=%0A',
  'lockName=%7F',
  'lockName=a+b',
  'lockName=+++',
  'reason=%zz',
  'reason=%00',
  '&',
  '=',
  '==',
  'lockName',
  'lockName==x',
  'x[',
  ';',
  'lockName=x;reason=y',
];

const FORM_TYPES = [
  'application/x-www-form-urlencoded; charset=utf-8',
  'application/x-www-form-urlencoded; charset=iso-8859-1',
  'application/x-www-form-urlencoded; charset=bogus',
  'application/x-www-form-urlencoded; charset=utf-16le',
  'APPLICATION/X-WWW-FORM-URLENCODED',
];

const formRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    act: action,
    lockName: fc.option(nameValue, {freq: 10, nil: undefined}),
    reason: fc.option(reasonValue, {freq: 10, nil: undefined}),
    unencoded: fc.oneof({weight: 8, arbitrary: fc.constant(false)}, fc.constant(true)),
    oddities: fc.oneof(
      {weight: 3, arbitrary: fc.constant<string[]>([])},
      fc.array(fc.constantFrom(...FORM_ODDITIES), {minLength: 1, maxLength: 2}),
    ),
    first: fc.boolean(),
    contentType: fc.oneof(
      {weight: 10, arbitrary: fc.constant(FORM)},
      fc.constantFrom(...FORM_TYPES),
    ),
  })
  .map(({act, lockName, reason, unencoded, oddities, first, contentType}) => {
    const tags = [`${act} form`];
    if (contentType !== FORM) tags.push(`content-type ${contentType}`);
    const e = unencoded ? (s: string) => s : enc;
    if (unencoded) tags.push('form values not percent-encoded');
    const pairs: string[] = [];
    if (lockName) pairs.push(`lockName=${e(lockName.value)}`);
    // a form cannot carry a lone surrogate: it goes as U+FFFD
    const formTag = (v: Labeled<string> | undefined) =>
      !v ? 'missing' : v.tag === 'lone surrogate' ? 'lone surrogate (sent as U+FFFD)' : v.tag;
    tags.push(`lockName: ${formTag(lockName)}`);
    if (act === 'disable') {
      if (reason) pairs.push(`reason=${e(reason.value)}`);
      tags.push(`reason: ${formTag(reason)}`);
    }
    for (const odd of oddities) tags.push(`form ${clip(odd, 40)}`);
    const all = first ? [...oddities, ...pairs] : [...pairs, ...oddities];
    return post(tags, act, contentType, all.join('&'));
  });

const formSpecialRequest: fc.Arbitrary<FuzzRequest> = fc.oneof(
  action.map(act =>
    post(
      [`${act} form`, 'form 1500 parameters'],
      act,
      FORM,
      'lockName=x&reason=y&' + Array.from({length: 1500}, (_, i) => `a${i}=1`).join('&'),
    ),
  ),
  fc
    .tuple(action, fc.string({maxLength: 200, unit: 'binary-ascii'}))
    .map(([act, s]) => post([`${act} form`, 'form random text'], act, FORM, s)),
  fc
    .tuple(action, fc.uint8Array({maxLength: 200}))
    .map(([act, b]) => post([`${act} form`, 'form random bytes'], act, FORM, Buffer.from(b))),
);

const MULTIPART_BODY =
  '--XyZ\r\nContent-Disposition: form-data; name="lockName"\r\n\r\nFUZZ-KNOWN\r\n' +
  '--XyZ\r\nContent-Disposition: form-data; name="reason"\r\n\r\nmultipart\r\n--XyZ--\r\n';

const OTHER_TYPES = [
  'text/plain',
  'text/plain; charset=utf-8',
  'application/xml',
  'text/xml',
  'text/html',
  'multipart/form-data; boundary=XyZ',
  'multipart/form-data',
  'multipart/mixed; boundary=XyZ',
  'application/octet-stream',
  'application/javascript',
  'application/x-json',
  'application/jsonx',
  'application/',
  '/json',
  'json',
  'application/json, text/plain',
  'garbage',
  '',
  ' ',
  '*/*',
  'application/*',
  'application/x-www-form-urlencoded, application/json',
];

const otherContentTypeRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    action,
    fc.oneof(fc.constant<string | undefined>(undefined), fc.constantFrom(...OTHER_TYPES)),
    fc.constantFrom(
      {tag: 'JSON body', body: '{"lockName":"FUZZ-KNOWN","reason":"r"}'},
      {tag: 'form body', body: 'lockName=FUZZ-KNOWN&reason=r'},
      {tag: 'XML body', body: '<?xml version="1.0"?><req><lockName>FUZZ-KNOWN</lockName></req>'},
      {tag: 'multipart body', body: MULTIPART_BODY},
      {tag: 'text body', body: 'FUZZ-KNOWN'},
      {tag: 'empty body', body: ''},
      {tag: 'no body', body: undefined},
    ),
  )
  .map(([act, type, {tag, body}]) =>
    post(
      [`${act}`, `content-type ${type === undefined ? 'missing' : JSON.stringify(type)}`, tag],
      act,
      type,
      body,
    ),
  );

const encodingRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    action,
    fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'bogus', 'gzip, gzip', 'GZIP'),
    fc.boolean(),
  )
  .map(([act, encoding, form]) => {
    const req = form
      ? post(
          [`${act} form`, `content-encoding ${encoding} (body not encoded)`],
          act,
          FORM,
          'lockName=FUZZ-KNOWN&reason=r',
        )
      : post(
          [`${act} json`, `content-encoding ${encoding} (body not encoded)`],
          act,
          JSON_TYPE,
          '{"lockName":"FUZZ-KNOWN","reason":"r"}',
        );
    req.headers['Content-Encoding'] = encoding;
    return req;
  });

const bigBodyRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(action, fc.boolean())
  .map(([act, form]) =>
    form
      ? post([`${act} form`, 'body over 1 MB'], act, FORM, 'lockName=' + 'x'.repeat(1_100_000))
      : post(
          [`${act} json`, 'body over 1 MB'],
          act,
          JSON_TYPE,
          JSON.stringify({lockName: 'x'.repeat(1_100_000)}),
        ),
  );

const getRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    fc.constantFrom('', '/status', '/health'),
    fc.oneof(fc.constant(undefined), fc.constant(undefined), queryString),
    fc.constantFrom<[string, string | undefined, string | undefined]>(
      ['no body', undefined, undefined],
      ['no body', undefined, undefined],
      ['no body', undefined, undefined],
      ['GET with invalid JSON body', JSON_TYPE, '{"lockName":'],
      ['GET with form body', FORM, 'lockName=%zz&__proto__[x]=1'],
      ['GET with text body', 'text/plain', 'hello'],
    ),
  )
  .map(([p, query, [tag, type, body]]) => {
    const headers: Record<string, string> = {};
    if (type) headers['Content-Type'] = type;
    return request({
      tags: [`GET ${p || '/'}`, query ? query.tag : 'no query', tag],
      method: 'GET',
      path: BASE + p + (query?.value ?? ''),
      headers,
      body,
      jsonErrors: query?.json ?? true,
    });
  });

const PATHS = [
  '',
  '/',
  '/disable',
  '/enable',
  '/status',
  '/health',
  '/disable/',
  '/status/',
  '//status',
  '/STATUS',
  '/Disable',
  '/status/extra',
  '/disable/x',
  '/%zz',
  '/status%00',
  '/status%2F',
  '/disable;x',
  '/..%2fstatus',
  '/%2e%2e/status',
  '/__proto__',
  '/constructor',
  '/' + 'x'.repeat(3000),
];

const methodPathRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
    fc.constantFrom(...PATHS),
  )
  .map(([method, p]) =>
    request({
      tags: [`method/path ${method} ${clip(p, 40)}`],
      method,
      path: BASE + p,
      headers: {},
    }),
  );

const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    fc.oneof(
      {weight: 40, arbitrary: validRequest},
      {weight: 80, arbitrary: jsonFieldsRequest},
      {weight: 20, arbitrary: jsonTopLevelRequest},
      {weight: 30, arbitrary: invalidJsonRequest},
      {weight: 10, arbitrary: pollutionRequest},
      {weight: 60, arbitrary: formRequest},
      {weight: 10, arbitrary: formSpecialRequest},
      {weight: 30, arbitrary: otherContentTypeRequest},
      {weight: 10, arbitrary: encodingRequest},
      {weight: 30, arbitrary: getRequest},
      {weight: 20, arbitrary: methodPathRequest},
      // 1 MB each: a few per run
      {weight: 1, arbitrary: bigBodyRequest},
    ),
    acceptHeader,
    fc.option(queryString, {freq: 15, nil: undefined}),
  )
  .map(([req, accept, query]) => {
    if (accept) {
      req.headers.Accept = accept.value;
      req.tags.push(`accept ${JSON.stringify(accept.value)}`);
      req.jsonErrors &&= accept.json;
    }
    if (query && req.method === 'POST' && !req.path.includes('?')) {
      req.path += query.value;
      req.tags.push(query.tag);
      req.jsonErrors &&= query.json;
    }
    return req;
  });

// ---- sending and judging ----

function send(url: URL, agent: http.Agent, req: FuzzRequest): Promise<FuzzResponse> {
  const body = typeof req.body === 'string' ? Buffer.from(req.body, 'utf8') : req.body;
  const headers = {...req.headers};
  if (body !== undefined) headers['Content-Length'] = String(body.length);
  // a big body may be refused before it is read: a connection of its own
  const big = (body?.length ?? 0) > 100_000;
  return new Promise(resolve => {
    const r = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path,
        headers,
        agent: big ? false : agent,
        timeout: 10_000,
      },
      res => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', err => resolve({headers: {}, text: '', error: String(err)}));
      },
    );
    r.on('timeout', () => r.destroy(new Error('no answer in 10 s')));
    r.on('error', err => resolve({headers: {}, text: '', error: String(err)}));
    r.end(body);
  });
}

const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort().join();

/** What is wrong with the answer, or undefined. */
function judge(req: FuzzRequest, res: FuzzResponse): string | undefined {
  if (res.error || res.status === undefined) return 'no HTTP answer';
  if (Object.getOwnPropertyNames(Object.prototype).sort().join() !== prototypeKeys) {
    return 'Object.prototype was polluted';
  }
  if (res.status >= 500) return `a ${res.status}`;
  if (req.valid && res.status !== 200) return `a ${res.status} to a valid request`;
  const type = String(res.headers['content-type'] ?? '');
  const hasBody = req.method !== 'HEAD' && res.status !== 204 && res.status !== 304;
  if (res.status >= 400 && hasBody) {
    if (/json/i.test(type)) {
      let parsed: {error?: {message?: unknown}} | undefined;
      try {
        parsed = JSON.parse(res.text);
      } catch {
        return `a ${res.status} whose JSON body does not parse`;
      }
      const message = parsed?.error?.message;
      if (typeof message !== 'string' || !message.trim()) {
        return `a ${res.status} without error.message`;
      }
    } else if (req.jsonErrors) {
      return `a ${res.status} that is not JSON (content-type "${type}")`;
    } else if (!res.text.trim()) {
      return `a ${res.status} with an empty body`;
    }
  }
  if (res.status === 200 && (req.method === 'GET' || req.method === 'POST')) {
    try {
      JSON.parse(res.text);
    } catch {
      return 'a 200 whose body is not JSON';
    }
  }
  return undefined;
}

interface Failure {
  problem: string;
  req: FuzzRequest;
  res: FuzzResponse;
}

function failureReport(failures: Failure[]): string {
  const groups = new Map<string, Failure[]>();
  for (const f of failures) {
    let message = f.res.error ?? '';
    try {
      message ||= JSON.parse(f.res.text).error.message;
    } catch {
      // XML <message>, HTML <title>, else the start of the body
      const m = /<message>([^<]*)<\/message>|<title>([^<]*)<\/title>/.exec(f.res.text);
      message ||= m ? (m[1] ?? m[2]) : clip(f.res.text, 80);
    }
    const key = `${f.problem} on ${f.req.method} ${f.req.path.split('?')[0]}: ${clip(String(message), 160)}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  return [...groups]
    .map(
      ([key, list]) =>
        `* ${list.length}x ${key}\n` +
        list
          .slice(0, 2)
          .map(
            f =>
              `  e.g.\n${describeRequest(f.req).replace(/^/gm, '    ')}\n    -> ${describeResponse(f.res)}`,
          )
          .join('\n'),
    )
    .join('\n');
}

// ---- the suites ----

const FUZZ_BACKENDS: BackendName[] = ['memory', 'postgresql'];

for (const backend of FUZZ_BACKENDS) {
  describe(`REST control fuzz on ${backend} (acceptance)`, function () {
    this.timeout(120_000);
    let db: TestDatabase;
    let app: App | undefined;
    let url: URL;
    const agent = new http.Agent({keepAlive: true, maxSockets: 1});

    before(async function () {
      db = await openTestDatabase(this, backend, 'mje_fuzz');
      app = new App({rest: {port: 0, host: '127.0.0.1'}});
      app.dataSource(db.createDataSource());
      app.configure(MasterJobExecutorBindings.COMPONENT).to({initDelay: 0});
      app.component(MasterJobExecutorComponent);
      await app.migrateSchema();
      // rows of earlier runs: the list and the status would grow run after run
      await (await app.getRepository(MasterControlRepository)).deleteAll();
      await (await app.getRepository(MasterLockRepository)).deleteAll();
      await app.start();
      url = new URL(app.restServer.url!);
      const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
      executor.startMaster({lockName: KNOWN, masterJob: {start() {}}});
      // the setup works: the known lock is listed
      const client = createRestAppClient(app);
      const deadline = Date.now() + 5000;
      for (;;) {
        const status = await client.get(`${BASE}/status`).expect(200);
        if (status.body.locks.some((l: {lockName: string}) => l.lockName === KNOWN)) break;
        if (Date.now() > deadline) throw new Error(`${KNOWN} never showed in the status`);
        await new Promise(resolve => setTimeout(resolve, 50));
      }
    });

    after(async () => {
      agent.destroy();
      await app?.stop();
      await db?.close();
    });

    it(`answers ${RUNS} malformed and valid requests without a 5xx, every 4xx with a JSON error message`, async () => {
      const started = Date.now();
      const failures: Failure[] = [];
      const stats = new Map<string, Map<string, number>>();
      const seed = process.env.MJE_FUZZ_SEED
        ? Number(process.env.MJE_FUZZ_SEED)
        : (Date.now() ^ (Math.random() * 2 ** 31)) | 0;
      try {
        await fc.assert(
          fc.asyncProperty(fuzzRequest, async req => {
            const res = await send(url, agent, req);
            const problem = judge(req, res);
            if (SURVEY) {
              const outcome = res.error ? 'no answer' : String(res.status);
              for (const tag of req.tags) {
                const counts = stats.get(tag) ?? new Map<string, number>();
                counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
                stats.set(tag, counts);
              }
            }
            if (!problem) return;
            failures.push({problem, req, res});
            if (!SURVEY) {
              throw new Error(`${problem}\n${describeRequest(req)}\n-> ${describeResponse(res)}`);
            }
          }),
          // no shrinking: the first bad answer is the one reported (and the server is stateful)
          {numRuns: RUNS, seed, endOnFailure: true},
        );
      } catch (err) {
        const first = failures[0];
        throw new Error(
          `${backend}: a bad answer to a fuzzed request (MJE_FUZZ_SEED=${seed} replays it).\n` +
            (first
              ? `First one: ${first.problem}\n${describeRequest(first.req)}\n-> ${describeResponse(first.res)}\n\n`
              : '') +
            err.message,
        );
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (SURVEY) {
        console.log(`      ${backend}: ${RUNS} requests in ${seconds} s, seed ${seed}`);
        for (const [tag, counts] of [...stats].sort(([a], [b]) => a.localeCompare(b))) {
          const line = [...counts].map(([s, n]) => `${s}x${n}`).join(' ');
          console.log(`        ${clip(tag, 90)}: ${line}`);
        }
        if (failures.length) {
          throw new Error(
            `${backend}: ${failures.length} bad answers of ${RUNS} (seed ${seed}):\n` +
              failureReport(failures),
          );
        }
      }
    });
  });
}
