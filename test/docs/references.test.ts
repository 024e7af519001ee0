/**
 * The repository explains itself (issue 15): no file points outside it for its design or rules,
 * and every reference to a document resolves. Over every tracked or new (not ignored) text file:
 *
 * (a) nothing points outside the repository: a path into a `shared` folder beside the clone,
 *     an absolute path of a development machine, a link or mention that climbs above the
 *     repository root, or "design rule N" without a document (rules are cited as
 *     "docs/architecture.md, rule N");
 * (b) every markdown link (relative to its file), every mention of a `*.md` file or a `docs/…`
 *     path in a comment or a document (relative to its file, one of its parent directories or the
 *     root), and every file path in inline code of a markdown file names something that exists;
 * (c) every `#anchor` of a link or mention to a markdown file names one of its headings
 *     (GitHub's slugs: lower case, punctuation dropped, spaces to hyphens, repeats numbered),
 *     and a section named in quotes after a file name is a heading of it or words it says.
 *
 * The last test runs the same checker on a small made-up repository, so a checker that stopped
 * finding anything would fail too.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '@hatch/testing';

type Kind = 'outside' | 'missing' | 'anchor';
interface Problem {
  kind: Kind;
  /** file:line */
  where: string;
  what: string;
  /** the line as written */
  text: string;
}

/** Generated or third-party content: not the repository's own words. */
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', '.hatch', '.tap', '.secrets', 'coverage', 'test-artifacts']);
const SKIP_PREFIXES = ['bench/results/', 'web/dist/', 'patches/'];
const SKIP_FILES = new Set(['pnpm-lock.yaml']);
const MAX_BYTES = 1024 * 1024;

/** The repository's files: tracked plus new ones git does not ignore; a walk when git is unavailable. */
function repoFiles(root: string): string[] {
  let list: string[];
  try {
    list = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .split('\0')
      .filter(Boolean);
  } catch {
    list = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
        const rel = dir ? `${dir}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (!SKIP_DIRS.has(e.name)) walk(rel);
        } else if (e.isFile()) list.push(rel);
      }
    };
    walk('');
  }
  return [...new Set(list)]
    .filter((f) => !f.split('/').some((seg) => SKIP_DIRS.has(seg)))
    .filter((f) => !SKIP_PREFIXES.some((p) => f.startsWith(p)) && !SKIP_FILES.has(path.basename(f)))
    .filter((f) => {
      const abs = path.join(root, f);
      if (!fs.existsSync(abs) || !fs.statSync(abs).isFile() || fs.statSync(abs).size > MAX_BYTES) return false;
      return !fs.readFileSync(abs).subarray(0, 8000).includes(0);
    })
    .sort();
}

// ---- GitHub heading slugs ----------------------------------------------------------------

function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a markdown file offers: its headings' slugs (repeats numbered) and explicit ids. */
function anchorsOf(text: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  const add = (h: string) => {
    const base = slug(h);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  };
  let fence: string | undefined;
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const f = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (f?.[1]) {
      if (!fence) fence = f[1][0];
      else if (f[1][0] === fence) fence = undefined;
      return;
    }
    if (fence) return;
    const atx = /^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (atx?.[1] !== undefined) return add(atx[1]);
    const prev = lines[i - 1] ?? '';
    if (/^\s{0,3}(=+|-+)\s*$/.test(line) && prev.trim() && !/^\s*([-*+>|#]|\d+\.)/.test(prev)) add(prev);
    for (const m of line.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) if (m[1]) out.add(m[1]);
  });
  return out;
}

// ---- the checker -------------------------------------------------------------------------

/** Where a mention (not a link) may point: its own directory, any parent, the root. */
function mentionCandidates(root: string, fromFile: string, ref: string): string[] {
  if (ref.startsWith('./') || ref.startsWith('../')) return [path.resolve(root, path.dirname(fromFile), ref)];
  const out: string[] = [];
  for (let dir = path.dirname(fromFile); ; dir = path.dirname(dir)) {
    out.push(path.resolve(root, dir === '.' ? '' : dir, ref));
    if (dir === '.' || dir === '/' || dir === '') break;
  }
  return out;
}

const inside = (root: string, abs: string) => abs === root || abs.startsWith(root + path.sep);
const URL_RE = /\b[a-z][a-z0-9+.-]*:\/\/[^\s)>\]"'`]+/gi;
/** A markdown file's name, bare or with directories, with an optional #anchor; not inside a longer path or a template. */
const MD_MENTION = /(?<![\w./${}@-])((?:\.{1,2}\/)*(?:[\w.@-]+\/)*[\w-][\w.-]*\.md)(?:#([\w-]+))?(?![\w/])/g;
/** `docs/…` paths that are not markdown files (a directory, an image). */
const DOCS_MENTION = /(?<![\w./${}@-])(docs\/[\w./-]*\w)(?![\w/])/g;
const MD_LINK = /!?\[(?:[^\]]|\][^(])*?\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+["'(][^)]*)?\)/g;
const MD_DEF = /^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/;

function checkRepository(root: string, files: string[] = repoFiles(root)): Problem[] {
  const problems: Problem[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const topLevel = new Set(files.map((f) => f.split('/')[0] as string).filter((s) => files.some((f) => f.startsWith(`${s}/`))));
  const anchors = (abs: string) => {
    let a = anchorCache.get(abs);
    if (!a) anchorCache.set(abs, (a = anchorsOf(fs.readFileSync(abs, 'utf8'))));
    return a;
  };
  const checkAnchor = (where: string, text: string, abs: string, anchor: string | undefined, shown: string) => {
    if (!anchor || !abs.endsWith('.md') || !fs.existsSync(abs) || !fs.statSync(abs).isFile()) return;
    const a = anchors(abs);
    if (!a.has(decodeURIComponent(anchor).toLowerCase())) {
      problems.push({ kind: 'anchor', where, text, what: `${shown}: ${path.relative(root, abs)} has no heading #${anchor}` });
    }
  };

  for (const file of files) {
    const text = fs.readFileSync(path.join(root, file), 'utf8');
    const isMd = file.endsWith('.md');
    let fence = false;
    text.split('\n').forEach((raw, i) => {
      const where = `${file}:${i + 1}`;
      const fenceLine = /^\s{0,3}(`{3,}|~{3,})/.test(raw);
      if (isMd && fenceLine) fence = !fence;

      // (a) pointers outside the repository
      if (/(?:\.\.\/)+shared\b/.test(raw))
        problems.push({ kind: 'outside', where, text: raw, what: `points into a folder next to the repository: ${raw.trim()}` });
      if (/(?<![\w.-])\/work\/[\w.-]/.test(raw))
        problems.push({ kind: 'outside', where, text: raw, what: `an absolute path of a development machine: ${raw.trim()}` });
      if (/\bdesign rules? \d/i.test(raw))
        problems.push({
          kind: 'outside',
          where,
          text: raw,
          what: `cites a design rule without its document (write "docs/architecture.md, rule N"): ${raw.trim()}`,
        });

      let line = raw.replace(URL_RE, ' ');

      // (b, c) markdown links, resolved against their own file as GitHub does
      if (isMd && !fence) {
        const linkable = line.replace(/`[^`]*`/g, (s) => ' '.repeat(s.length));
        const targets: string[] = [];
        for (const m of linkable.matchAll(MD_LINK)) if (m[1]) targets.push(m[1]);
        const def = MD_DEF.exec(linkable);
        if (def?.[1]) targets.push(def[1]);
        for (let target of targets) {
          target = target.replace(/^<|>$/g, '');
          if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // mailto:, https:, …
          const [p = '', anchor] = target.split('#', 2);
          const abs =
            p === ''
              ? path.join(root, file)
              : p.startsWith('/')
                ? path.join(root, p)
                : path.resolve(root, path.dirname(file), decodeURIComponent(p));
          if (!inside(root, abs)) {
            problems.push({ kind: 'outside', where, text: raw, what: `link ${target} leaves the repository` });
            continue;
          }
          if (!fs.existsSync(abs)) {
            problems.push({ kind: 'missing', where, text: raw, what: `link ${target}: no ${path.relative(root, abs)}` });
            continue;
          }
          checkAnchor(where, raw, abs, anchor, `link ${target}`);
        }
        // a link target was checked strictly; do not check it again as a loose mention
        line = line.replace(MD_LINK, (s) => s.replace(/\]\([^)]*\)$/, ']'));

        // file paths in inline code (`services/gateway/src/app.ts`), from the root or the file's own directories
        for (const m of line.matchAll(/`([^`\s]+)`/g)) {
          const p = m[1] ?? '';
          if (!/^[\w.-]+(\/[\w.@-]+)+\.[a-z]{1,5}$/i.test(p)) continue;
          if (
            !topLevel.has(p.split('/')[0] as string) ||
            p.split('/').some((seg) => SKIP_DIRS.has(seg)) ||
            SKIP_PREFIXES.some((s) => p.startsWith(s))
          )
            continue;
          if (!mentionCandidates(root, file, p).some((c) => inside(root, c) && fs.existsSync(c)))
            problems.push({ kind: 'missing', where, text: raw, what: `\`${p}\` does not exist` });
        }
      }

      // (a, b, c) mentions of markdown files and docs/ paths, in any file
      for (const m of line.matchAll(MD_MENTION)) {
        const ref = m[1] ?? '';
        const cands = mentionCandidates(root, file, ref);
        if (cands.every((c) => !inside(root, c))) {
          problems.push({ kind: 'outside', where, text: raw, what: `${ref} is outside the repository` });
          continue;
        }
        const hit = cands.find((c) => inside(root, c) && fs.existsSync(c));
        if (!hit)
          problems.push({ kind: 'missing', where, text: raw, what: `${ref}${m[2] ? `#${m[2]}` : ''}: no such file in the repository` });
        else {
          checkAnchor(where, raw, hit, m[2], ref);
          // a section named in quotes right after the file (README.md "Commands"): a heading of
          // the file, or at least words the file says
          const quoted = /^\s*"([^"]+)"/.exec(line.slice((m.index ?? 0) + m[0].length));
          const named = quoted?.[1];
          if (named && !m[2] && hit.endsWith('.md') && !fs.readFileSync(hit, 'utf8').toLowerCase().includes(named.toLowerCase())) {
            checkAnchor(where, raw, hit, slug(named), `${ref} "${named}"`);
          }
        }
      }
      for (const m of line.matchAll(DOCS_MENTION)) {
        const ref = m[1] ?? '';
        if (ref.endsWith('.md')) continue;
        if (!mentionCandidates(root, file, ref).some((c) => inside(root, c) && fs.existsSync(c))) {
          problems.push({ kind: 'missing', where, text: raw, what: `${ref}: no such file or directory in the repository` });
        }
      }
    });
  }
  return problems;
}

// ---- the repository ----------------------------------------------------------------------

const problems = checkRepository(REPO_ROOT);
const show = (kind: Kind) => problems.filter((p) => p.kind === kind).map((p) => `${p.where}: ${p.what}`);

t.test('no file points outside the repository for its design or rules', async (t) => {
  t.same(show('outside'), []);
});

t.test('every markdown link and every docs/ or *.md reference names a file that exists', async (t) => {
  t.same(show('missing'), []);
});

t.test('every #anchor of a link to a markdown file names one of its headings', async (t) => {
  t.same(show('anchor'), []);
});

t.test('the docs the README promises are there and linked from it', async (t) => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  for (const doc of [
    'docs/architecture.md',
    'docs/reliability.md',
    'docs/operations.md',
    'docs/api.md',
    'SECURITY.md',
    'bench/README.md',
    'k8s/README.md',
  ]) {
    t.ok(fs.existsSync(path.join(REPO_ROOT, doc)), `${doc} exists`);
    t.ok(readme.includes(`](${doc})`), `README links ${doc}`);
  }
});

// ---- the checker itself ------------------------------------------------------------------

t.test('the checker is live: it reports each kind of dangling reference in a made-up repository', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-refs-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  // Names are assembled here so this file does not itself hold the references it plants.
  const md = (name: string) => `${name}.md`;
  const outsideDir = ['..', 'shared'].join('/');
  const write = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  write(
    md('README'),
    [
      '# Demo',
      '',
      `See [the design](${outsideDir}/${md('design')}) and [ops](docs/${md('ops')}).`,
      `Rules: [arch](docs/${md('architecture')}#the-rules), [arch top](docs/${md('architecture')}#architecture-of-it).`,
      'Code: `src/app.ts` and `src/gone.ts`.',
      '',
      '```',
      `[not a link](${md('nowhere')})`,
      '```',
    ].join('\n'),
  );
  write(
    `docs/${md('architecture')}`,
    ['# Architecture of it', '', '## The rules', '', '## The rules', '', `Back to [the readme](../${md('README')}#demo).`].join('\n'),
  );
  write(
    'src/app.ts',
    [
      `// why: ${md('reliability')} §2.4, and docs/${md('architecture')}#the-rules-1 (exists), docs/${md('architecture')}#no-such-part`,
      `// ${['design', 'rule'].join(' ')} 3 says so`,
      `const report = \`\${stamp}.${'md'}\`; // a template, not a reference`,
      `// https://example.com/${md('whatever')} is a URL`,
      `// as ${md('README')} "Demo" says, not ${md('README')} "Nothing like it"`,
    ].join('\n'),
  );
  const got = checkRepository(root).map((p) => `${p.kind} ${p.where}`);
  t.same(
    got.sort(),
    [
      'outside README.md:3', // the link into the folder next to the repository …
      'outside README.md:3', // … which also leaves the repository
      'missing README.md:3', // the ops page
      'missing README.md:5', // the gone source file in inline code
      'missing README.md:8', // a mention inside a code block still names a file
      'missing src/app.ts:1', // the bare reliability page
      'anchor src/app.ts:1', // a heading that is not there
      'outside src/app.ts:2', // a design rule without its document
      'anchor src/app.ts:5', // a quoted section the file does not have
    ].sort(),
    'each planted problem is reported, nothing else',
  );
  t.same(slug('`POST /api/send_email`'), 'post-apisend_email', 'code spans keep their text, punctuation goes');
  t.same(slug('Fault tests: T1–T15'), 'fault-tests-t1t15', 'a dash between words is dropped, as on GitHub');
});
