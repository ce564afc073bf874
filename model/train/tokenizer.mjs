#!/usr/bin/env node
// Trains diffill's byte-level BPE tokenizer with Hugging Face's official
// `tokenizers` binding (npm), and measures tokenizers on held-out files.
//
//   npm install --prefix DIR tokenizers   (see package.json; DIR outside the repo)
//   NODE_PATH=DIR/node_modules node model/train/tokenizer.mjs train \
//       --files train.txt --out tokenizer.json [--vocab 8192] [--pattern go|gpt2]
//   ... tokenizer.mjs measure --tokenizer tokenizer.json --files heldout.txt
//   ... tokenizer.mjs compare --train train.txt --heldout heldout.txt --out tokenizer.json
//
// --files names a text file with one corpus path a line (corpus.py list --absolute).
//
// The binding's train() uses the BPE model's default trainer (30000 tokens, no
// special tokens); BPE training is greedy, so its first N merges are exactly
// what a run stopped at N would give. We keep the merges that fit the wanted
// vocabulary and write tokenizer.json ourselves, in the shape every diffill
// component relies on (contracts: special tokens at ids 0..2, the full 256-byte
// alphabet next, then merged tokens in merge order; pre-tokenizer
// Split(P, Isolated) then ByteLevel without its own regex).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const tk = require("tokenizers");

// diffill's Go-aware split: newline runs plus the next line's indentation are
// one pre-token; identifiers keep one leading space; no lookahead, so Go's
// regexp runs it as is.
export const GO_PATTERN =
  "(?:\\r?\\n)+[\\t ]*| ?[\\p{L}_][\\p{L}\\p{N}_]*| ?\\p{N}{1,3}| ?[^\\t\\n\\r \\p{L}\\p{N}_]+|[\\t ]+|\\r";
// GPT-2's pattern, the earlier experiment's baseline.
export const GPT2_PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const SPECIALS = ["<|endoftext|>", "<|mask|>", "<|pad|>"];

function args(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) out[argv[i].slice(2)] = argv[++i];
    else out._.push(argv[i]);
  }
  return out;
}

function readList(file) {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.length > 0);
}

// The GPT-2 byte-to-unicode table used by ByteLevel.
function byteAlphabet() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const table = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i])));
  return table;
}

const NL_STANDIN = "\x1e";
const BYTE = byteAlphabet();

// standIn gives the pattern to train with: the same split, with NL_STANDIN
// playing the newline's part.
function standIn(pattern) {
  if (pattern === GO_PATTERN) return pattern.replaceAll("\\n", "\\x1e");
  if (pattern === GPT2_PATTERN) {
    return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\x1e\\p{L}\\p{N}]+|[\\s\\x1e]+(?![^\\s\\x1e])|[\\s\\x1e]+";
  }
  throw new Error(`no training stand-in for pattern ${pattern}`);
}

function swapNewline(token) {
  const nl = BYTE[10];
  const st = BYTE[0x1e];
  return [...token].map((c) => (c === nl ? st : c === st ? nl : c)).join("");
}

function tokenizerJSON(pattern, vocab, merges) {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

function train(files, pattern, vocabSize, out) {
  const t0 = Date.now();
  // The trainer reads its files line by line, so no training sequence could
  // hold a newline followed by the next line's indentation, the very
  // pre-token the Go pattern makes. So we train on text whose newlines are
  // NL_STANDIN (absent from the corpus; checked) with the pattern rewritten to
  // match, and swap the two byte-level symbols back in the learned merges.
  const trainPattern = standIn(pattern);
  // Built from JSON: the binding's splitPreTokenizer(string) splits on the
  // literal string, not on a regex; JSON's {"Regex": P} is the regex form.
  const empty = tokenizerJSON(trainPattern, {}, []);
  empty.added_tokens = [];
  const tok = tk.Tokenizer.fromString(JSON.stringify(empty));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "diffill-tok-"));
  const joined = path.join(tmp, "train.txt");
  const fd = fs.openSync(joined, "w");
  for (const f of files) {
    const text = fs.readFileSync(f, "utf8");
    if (text.includes(NL_STANDIN)) throw new Error(`${f} holds the newline stand-in U+001E`);
    fs.writeSync(fd, text.replaceAll("\n", NL_STANDIN));
  }
  fs.closeSync(fd);
  tok.train([joined]);
  const rawFile = path.join(tmp, "raw.json");
  tok.save(rawFile, false);
  const raw = JSON.parse(fs.readFileSync(rawFile, "utf8"));
  fs.rmSync(tmp, { recursive: true, force: true });

  const vocab = {};
  SPECIALS.forEach((s, i) => (vocab[s] = i));
  let next = SPECIALS.length;
  for (const ch of byteAlphabet()) vocab[ch] = next++;
  const merges = [];
  for (const m of raw.model.merges) {
    if (next >= vocabSize) break;
    const [a, b] = (Array.isArray(m) ? m : m.split(" ")).map(swapNewline);
    if (!(a in vocab) || !(b in vocab)) throw new Error(`merge ${a} ${b} uses an unknown token`);
    const ab = a + b;
    if (ab in vocab) continue;
    merges.push(`${a} ${b}`);
    vocab[ab] = next++;
  }
  fs.writeFileSync(out, JSON.stringify(tokenizerJSON(pattern, vocab, merges)));
  console.error(
    `trained ${next} tokens (${merges.length} merges) on ${files.length} files in ${((Date.now() - t0) / 1000).toFixed(0)}s -> ${out}`,
  );
}

async function measure(tokFile, files) {
  const tok = tk.Tokenizer.fromFile(tokFile);
  let chars = 0;
  let bytes = 0;
  let tokens = 0;
  let roundTrip = 0;
  for (const f of files) {
    const text = fs.readFileSync(f, "utf8");
    const enc = await tok.encode(text);
    const ids = enc.getIds();
    chars += [...text].length;
    bytes += Buffer.byteLength(text);
    tokens += ids.length;
    if ((await tok.decode(ids, false)) !== text) roundTrip++;
  }
  return { chars, bytes, tokens, charsPerToken: chars / tokens, bytesPerToken: bytes / tokens, roundTripFailures: roundTrip };
}

async function main() {
  const a = args(process.argv.slice(2));
  const cmd = a._[0];
  const vocabSize = Number(a.vocab || 8192);
  if (cmd === "train") {
    const pattern = a.pattern === "gpt2" ? GPT2_PATTERN : GO_PATTERN;
    train(readList(a.files), pattern, vocabSize, a.out);
  } else if (cmd === "measure") {
    console.log(JSON.stringify(await measure(a.tokenizer, readList(a.files))));
  } else if (cmd === "compare") {
    // Trains both pre-tokenizers on the train split, measures them on the
    // held-out split, and keeps the one with more characters per token.
    const trainFiles = readList(a.train);
    const heldout = readList(a.heldout);
    const results = {};
    for (const name of ["go", "gpt2"]) {
      const file = `${a.out}.${name}`;
      train(trainFiles, name === "go" ? GO_PATTERN : GPT2_PATTERN, vocabSize, file);
      results[name] = await measure(file, heldout);
      console.error(name, JSON.stringify(results[name]));
    }
    const win = results.go.charsPerToken >= results.gpt2.charsPerToken ? "go" : "gpt2";
    fs.copyFileSync(`${a.out}.${win}`, a.out);
    for (const name of ["go", "gpt2"]) fs.rmSync(`${a.out}.${name}`);
    console.log(JSON.stringify({ winner: win, results }));
  } else {
    console.error("usage: tokenizer.mjs train|measure|compare ...");
    process.exit(2);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
