// gen.js makes the test tokenizers and the golden encodings of
// model/tokenizer with Hugging Face's own `tokenizers` (the npm binding of the
// Rust library), so the Go tests compare against the reference itself.
//
// Run from anywhere (node_modules must stay outside the repository):
//
//	mkdir -p /tmp/tokgen && (cd /tmp/tokgen && npm install tokenizers@0.23.2)
//	NODE_PATH=/tmp/tokgen/node_modules node model/tokenizer/testdata/gen/gen.js
//
// It trains byte-level BPE merges on Go sources from $(go env GOROOT)/src and
// the corpus, keeps the first merges (vocab about 2000), writes
//
//	testdata/gpt2/tokenizer.json     GPT-2 style: ByteLevel{use_regex:true}, "a b" merges,
//	                                 added tokens with lstrip/rstrip/single_word/normalized
//	testdata/qwen2/tokenizer.json    Qwen2 style: NFC, Split{Qwen2 regex} + ByteLevel, [a,b] merges
//	testdata/qwen2-slow/             the same as vocab.json + merges.txt + tokenizer_config.json
//	testdata/llama3/tokenizer.json   Llama-3 style: Split{\p{N}{1,3} regex}, ignore_merges
//	testdata/goaware/tokenizer.json  diffill's built-in layout: Go-aware split, specials 0..2
//	testdata/deepseek/tokenizer.json DeepSeek-Coder style: five Splits without lookahead
//	testdata/gpt2-prefix/            GPT-2 style with add_prefix_space
//	testdata/golden/texts.json       the texts: corpus.js and random strings of its pieces
//	testdata/golden/NAME.json        per tokenizer, HF's ids for encode (no post-processing),
//	                                 for encode without special tokens, and HF's decode
//	                                 where it differs from the text
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const hf = require('tokenizers');
const { corpus, pieces } = require('./corpus.js');

const testdata = path.join(__dirname, '..');

const PATTERN_QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const PATTERN_LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const PATTERN_GO = "(?:\\r?\\n)+[\\t ]*| ?[\\p{L}_][\\p{L}\\p{N}_]*| ?\\p{N}{1,3}| ?[^\\t\\n\\r \\p{L}\\p{N}_]+|[\\t ]+|\\r";

const byteLevelPre = (useRegex) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
const splitPre = (pattern) => ({
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
    byteLevelPre(false),
  ],
});
const NFC = { type: 'NFC' };

function tokenizerJSON({ normalizer = null, preTokenizer, vocab = {}, merges = [], added = [], ignoreMerges = false }) {
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: added.map((a) => ({
      id: a.id, content: a.content, single_word: !!a.single_word, lstrip: !!a.lstrip,
      rstrip: !!a.rstrip, normalized: !!a.normalized, special: !!a.special,
    })),
    normalizer, pre_tokenizer: preTokenizer, post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: ignoreMerges, vocab, merges,
    },
  };
}

// GPT-2's byte-to-rune table, in byte order.
function byteAlphabet() {
  const out = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out.push(String.fromCodePoint(printable ? b : 256 + n++));
  }
  return out;
}

function goSources() {
  const goroot = execFileSync('go', ['env', 'GOROOT']).toString().trim();
  const files = [];
  for (const dir of ['strings', 'bytes', 'fmt', 'bufio', 'sort', 'errors', 'net/url', 'encoding/json', 'text/template']) {
    const d = path.join(goroot, 'src', dir);
    for (const f of fs.readdirSync(d).sort()) {
      if (f.endsWith('.go') && !f.endsWith('_test.go')) files.push(path.join(d, f));
    }
  }
  return files;
}

// train returns the merges (as pairs) Hugging Face's BPE trainer learns on
// the Go sources and the corpus with the given normalizer and pre-tokenizer.
function train(normalizer, preTokenizer, sources, tmp) {
  const t = hf.Tokenizer.fromString(JSON.stringify(tokenizerJSON({ normalizer, preTokenizer })));
  t.train(sources);
  const out = path.join(tmp, 'trained.json');
  t.save(out);
  return JSON.parse(fs.readFileSync(out, 'utf8')).model.merges.map((m) => (typeof m === 'string' ? m.split(' ') : m));
}

// buildVocab makes the vocab: tokens before, the 256 byte runes, the results
// of the first merges until the vocab has size entries, tokens after.
function buildVocab(before, merges, size, after = []) {
  const vocab = {};
  let id = 0;
  for (const t of before) vocab[t] = id++;
  for (const r of byteAlphabet()) vocab[r] = id++;
  const kept = [];
  for (const [a, b] of merges) {
    if (id >= size) break;
    if (!(a in vocab) || !(b in vocab)) throw new Error(`merge ${a} ${b} out of order`);
    if (!((a + b) in vocab)) vocab[a + b] = id++;
    kept.push([a, b]);
  }
  for (const t of after) if (!(t in vocab)) vocab[t] = id++;
  return { vocab, merges: kept, next: id };
}

// write saves a tokenizer file with one vocab entry and one merge per line.
function write(file, tj, mergesAsStrings) {
  const parts = [];
  for (const [k, v] of Object.entries(tj)) {
    if (k !== 'model') parts.push(`${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  }
  const m = tj.model;
  const modelParts = [];
  for (const [k, v] of Object.entries(m)) {
    if (k === 'vocab') {
      modelParts.push('"vocab": {\n' + Object.entries(v).map(([t, id]) => `${JSON.stringify(t)}: ${id}`).join(',\n') + '\n}');
    } else if (k === 'merges') {
      const ms = v.map((p) => JSON.stringify(mergesAsStrings ? p.join(' ') : p));
      modelParts.push('"merges": [\n' + ms.join(',\n') + '\n]');
    } else {
      modelParts.push(`${JSON.stringify(k)}: ${JSON.stringify(v)}`);
    }
  }
  parts.push('"model": {\n' + modelParts.join(',\n') + '\n}');
  const text = '{\n' + parts.join(',\n') + '\n}\n';
  JSON.parse(text);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return text;
}

// Deterministic random strings from the hostile pieces (mulberry32).
function randomTexts(n, seed) {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [];
  for (let i = 0; i < n; i++) {
    const k = 1 + Math.floor(rnd() * 16);
    let text = '';
    for (let j = 0; j < k; j++) text += pieces[Math.floor(rnd() * pieces.length)];
    out.push([`random/${i}`, text]);
  }
  return out;
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tokgen-'));
  const trainText = path.join(tmp, 'corpus.txt');
  // The prose of the corpus is repeated so that some of its merges make the cut.
  fs.writeFileSync(trainText, corpus.map(([, t]) => t).join('\n').repeat(40));
  const sources = [...goSources(), trainText];

  const gpt2Merges = train(null, byteLevelPre(true), sources, tmp);
  const qwenMerges = train(NFC, splitPre(PATTERN_QWEN2), sources, tmp);
  const goMerges = train(null, splitPre(PATTERN_GO), sources, tmp);

  const tokenizers = {};

  // GPT-2 style: like GPT-2, <|endoftext|> is the last id and also in the vocab.
  {
    const v = buildVocab([], gpt2Merges, 1800);
    const eot = v.next;
    v.vocab['<|endoftext|>'] = eot;
    const added = [
      { id: eot, content: '<|endoftext|>', special: true },
      { id: eot + 1, content: '<mask>', special: true, lstrip: true },
      { id: eot + 2, content: '[SEP]', special: true, rstrip: true },
      { id: eot + 3, content: 'TODO', single_word: true },
      { id: eot + 4, content: '@@@', normalized: true },
      { id: eot + 5, content: '<|end|>', special: true },
    ];
    tokenizers.gpt2 = { json: tokenizerJSON({ preTokenizer: byteLevelPre(true), vocab: v.vocab, merges: v.merges, added }), strings: true };
  }
  // Qwen2 style: added tokens after the vocab, as in Qwen2.
  let qwenVocab;
  let qwenAdded;
  {
    const v = buildVocab([], qwenMerges, 2000);
    qwenVocab = v;
    let id = v.next;
    qwenAdded = [
      { id: id++, content: '<|endoftext|>', special: true },
      { id: id++, content: '<|im_start|>', special: true },
      { id: id++, content: '<|im_end|>', special: true },
      { id: id++, content: '<|mask|>', special: true },
      { id: id++, content: '<tool_call>' },
      { id: id++, content: '</tool_call>' },
      { id: id++, content: 'café', normalized: true },
    ];
    tokenizers.qwen2 = { json: tokenizerJSON({ normalizer: NFC, preTokenizer: splitPre(PATTERN_QWEN2), vocab: v.vocab, merges: v.merges, added: qwenAdded }) };
  }
  // Llama-3 style: Qwen2's merges, digits in threes, ignore_merges, and a few
  // vocab words no merge builds, which only ignore_merges can produce.
  {
    const extra = ['Ġinfill', 'Ġdiffusion', 'denoise', '999', 'infill'];
    const v = buildVocab([], qwenMerges, 2000, extra);
    let id = v.next;
    const added = qwenAdded.map((a) => ({ ...a, id: id++ }));
    tokenizers.llama3 = { json: tokenizerJSON({ preTokenizer: splitPre(PATTERN_LLAMA3), vocab: v.vocab, merges: v.merges, added, ignoreMerges: true }) };
  }
  // DeepSeek-Coder style: several Splits in a row, patterns without
  // lookahead (Go's regexp runs them, with \s made Unicode-aware).
  {
    const splits = ['[\r\n]', '\\s?\\p{L}+', '\\s?\\p{P}+', '[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+', '\\p{N}']
      .map((p) => ({ type: 'Split', pattern: { Regex: p }, behavior: 'Isolated', invert: false }));
    const pre = { type: 'Sequence', pretokenizers: [...splits, byteLevelPre(false)] };
    tokenizers.deepseek = { json: tokenizerJSON({ preTokenizer: pre, vocab: qwenVocab.vocab, merges: qwenVocab.merges, added: qwenAdded }) };
  }
  // GPT-2 with add_prefix_space: every piece of text between added tokens
  // gets a leading space.
  {
    const j = JSON.parse(JSON.stringify(tokenizers.gpt2.json));
    j.pre_tokenizer.add_prefix_space = true;
    tokenizers['gpt2-prefix'] = { json: j, strings: true };
  }
  // diffill's built-in layout: special tokens 0..2, Go-aware split, no normalizer.
  {
    const specials = ['<|endoftext|>', '<|mask|>', '<|pad|>'];
    const v = buildVocab([], goMerges, 2000 - specials.length);
    const vocab = {};
    specials.forEach((s, i) => { vocab[s] = i; });
    for (const [t, id] of Object.entries(v.vocab)) vocab[t] = id + specials.length;
    const added = specials.map((content, id) => ({ id, content, special: true }));
    tokenizers.goaware = { json: tokenizerJSON({ preTokenizer: splitPre(PATTERN_GO), vocab, merges: v.merges, added }) };
  }

  for (const [name, t] of Object.entries(tokenizers)) {
    const text = write(path.join(testdata, name, 'tokenizer.json'), t.json, t.strings);
    t.hf = hf.Tokenizer.fromString(text);
    const ordinary = { ...t.json, added_tokens: t.json.added_tokens.filter((a) => !a.special) };
    t.hfOrdinary = hf.Tokenizer.fromString(JSON.stringify(ordinary));
    console.log(`${name}: ${text.length} bytes, vocab ${t.hf.getVocabSize(true)}`);
  }

  // The Qwen2 tokenizer again, as the slow-tokenizer files the Dream family ships.
  {
    const dir = path.join(testdata, 'qwen2-slow');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(qwenVocab.vocab) + '\n');
    fs.writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\n' + qwenVocab.merges.map((p) => p.join(' ')).join('\n') + '\n');
    const decoder = {};
    for (const a of tokenizers.qwen2.json.added_tokens) {
      decoder[a.id] = { content: a.content, lstrip: a.lstrip, normalized: a.normalized, rstrip: a.rstrip, single_word: a.single_word, special: a.special };
    }
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'),
      JSON.stringify({ tokenizer_class: 'Qwen2Tokenizer', added_tokens_decoder: decoder, eos_token: '<|endoftext|>' }, null, 2) + '\n');
  }

  const texts = [...corpus, ...randomTexts(400, 20240601)];
  const golden = { texts: texts.map(([name, text]) => ({ name, text })), tokenizers: {} };
  for (const [name, t] of Object.entries(tokenizers)) {
    const cases = [];
    for (const [, text] of texts) {
      const ids = (await t.hf.encode(text, null, { addSpecialTokens: false })).getIds();
      // The variant without special tokens numbers its added tokens anew:
      // map its ids back through their content.
      const ordinary = (await t.hfOrdinary.encode(text, null, { addSpecialTokens: false })).getIds()
        .map((id) => t.hf.tokenToId(t.hfOrdinary.idToToken(id)));
      const decoded = await t.hf.decode(ids, false);
      const c = { ids };
      if (ordinary.join() !== ids.join()) c.ordinary = ordinary;
      if (decoded !== text) c.decoded = decoded;
      cases.push(c);
    }
    golden.tokenizers[name] = cases;
  }
  const goldenDir = path.join(testdata, 'golden');
  fs.mkdirSync(goldenDir, { recursive: true });
  const lines = (items) => '[\n' + items.map((x) => JSON.stringify(x)).join(',\n') + '\n]\n';
  fs.writeFileSync(path.join(goldenDir, 'texts.json'), lines(golden.texts));
  for (const [name, cases] of Object.entries(golden.tokenizers)) {
    fs.writeFileSync(path.join(goldenDir, name + '.json'), lines(cases));
  }
  console.log(`golden: ${texts.length} texts`);
  fs.rmSync(tmp, { recursive: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
