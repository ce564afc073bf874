// The golden corpus: texts whose encodings Hugging Face `tokenizers` computes
// and the Go tests must reproduce token for token. Escapes keep control
// characters, CRLF and invisible characters visible here.
'use strict';

const goCode = `// Package ring implements a fixed-size ring buffer.
package ring

import (
	"errors"
	"fmt"
)

// ErrFull is returned when the buffer has no room left.
var ErrFull = errors.New("ring: buffer is full")

type Ring[T any] struct {
	buf        []T
	head, size int
}

func New[T any](n int) *Ring[T] {
	return &Ring[T]{buf: make([]T, n)}
}

// Push appends v; it doesn't overwrite old values.
func (r *Ring[T]) Push(v T) error {
	if r.size == len(r.buf) {
		return fmt.Errorf("push %v: %w", v, ErrFull)
	}
	r.buf[(r.head+r.size)%len(r.buf)] = v
	r.size++
	return nil
}

func (r *Ring[T]) Pop() (v T, ok bool) {
	if r.size == 0 {
		return v, false
	}
	v, r.head = r.buf[r.head], (r.head+1)%len(r.buf)
	r.size--
	return v, true
}

func main() {
	r := New[int](3)
	for i := 0; i < 5; i++ {
		if err := r.Push(i * 0x1F); err != nil {
			fmt.Println("error:", err)
		}
	}
	x := 3.14159e-10 + 1_000_000
	_ = x
	s := \`raw
string\` + "\\t\\n"
	_ = s
}
`;

const python = `#!/usr/bin/env python3
"""Count words.   It's a tiny script; we'll keep it that way."""

import collections


class Counter:
    def __init__(self, text: str) -> None:
        self.counts = collections.Counter(text.split())

    def top(self, n=10):
        # Don't sort twice: most_common already does.
        return self.counts.most_common(n)


if __name__ == "__main__":
    c = Counter("the cat and the hat")
    print(f"{c.top(2)!r:>20}")
    print('I\\'LL BE BACK', "we're", "they've", "she'd", "I'm", 'O\\'Neil\\'s')
	# a tab-indented comment
`;

const js = `export async function fetchJSON(url, { retries = 3 } = {}) {
  for (let i = 0; i <= retries; i++) {
    try {
      const res = await fetch(\`\${url}?page=\${i}\`);
      if (!res.ok) throw new Error(\`HTTP \${res.status}\`);
      return await res.json();
    } catch (e) {
      console.warn("retry", i, e?.message ?? e);
    }
  }
  return null; // give up
}
const re = /^[a-z_$][\\w$]*$/i, arr = [1, 2, 3].map((x) => x ** 2);
`;

const markdown = `# diffill

A **language server** that fills in code with a _diffusion_ LM.

## Install

\`\`\`sh
go install github.com/diffill/diffill/cmd/diffill@latest
\`\`\`

- [x] infill
- [ ] rewrite    (soon)
> Note: it's *fast*.

| model | params | ms/token |
|-------|-------:|---------:|
| tiny  |   10M  |     0.8  |
`;

const chinese = `中文分词是自然语言处理的基础任务。我们在2024年发布了第3版，支持简体和繁體字！“引号”、【括号】以及……省略号。`;
const japanese = `日本語のテキスト：ひらがな、カタカナ、漢字を混ぜた文です。\u3000全角スペースと「かぎ括弧」もあります。ｶﾀｶﾅ半角も。`;
const arabic = `مرحبا بالعالم! هذه جملة عربية تحتوي على أرقام ١٢٣٤ و 5678، وتشكيل: السَّلامُ عَلَيْكُم.`;
const mixedScripts = `Русский текст, ελληνικά, עברית, हिन्दी भाषा में लिखा गया, ภาษาไทย, 한국어 문장입니다, Tiếng Việt có dấu.`;
const emoji = `Emoji: 😀😃 👍🏽 👩🏾‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵🇫🇷 1️⃣ #️⃣ ❤️ ✌🏻 🧑‍🤝‍🧑 ok👌done`;
const numbers = `Numbers: 0 7 42 1234567 3.14159 -2.5e10 1,234,567.89 0xDEADBEEF 0b1010 1e-9 ½ ¾ Ⅻ ① ²³ 100% $9.99 v1.2.3 2024-06-01T12:34:56Z`;
const contractions = `it's It'S isn't I'M you're YOU'RE we've WE'VE they'll THEY'LL he'd HE'D 's 't 're ''s '' ' s rock'n'roll ſ 'ſ 'K 'ß`;
const whitespace = `a  b   c    d\t\te\t \tf \n\n\ng\n \n  h` + ' '.repeat(100) + 'i' + '\t'.repeat(20) + 'j\n' + '\n'.repeat(30) + '    k' + ' '.repeat(7) + '\n' + '\u00a0\u00a0x\u3000\u3000y \u2028z\u2029\u0085w\u000b\f v  ';
const crlf = "package main\r\n\r\nimport \"fmt\"\r\n\r\nfunc main() {\r\n\tfmt.Println(\"hi\")\r\n}\r\n\r\n\r\n  \r\n\rlone CR\r\r\n";
const nfc = `NFC: cafe\u0301 café A\u030A Å \u1100\u1161\u11A8 각 n\u0303 o\u0308\u0304 e\u0301\u0301 \u212B \u2126 q\u0307\u0323 Hello\u0301 ﬁ ｆｕｌｌ`;
const control = "ctl: \u0000\u0001\u001b[31mred\u001b[0m \u007f \ufeffBOM \u200bzero\u200cwidth\u200djoin \u00ad soft \uFFFD replacement \uE000 private";
const longTokens = 'aVeryLongIdentifierNameThatKeepsGoingAndGoingForeverAndEverUntilItIsClearlyLongerThanFortyEightBytes := 1\n' +
  'data = "' + 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLz0'.repeat(6) + '"\n' +
  '='.repeat(120) + '\n' + '-'.repeat(80) + '\n' + '0123456789'.repeat(8) + '\n' + 'ab'.repeat(60) + '\n';
const special = `<|endoftext|>Hello<|mask|><|mask|> world <|pad|>end<|im_start|>user\n hi<|im_end|>\n <mask> x  <mask>y [SEP]   z TODO xTODO TODOx (TODO) <tool_call>{"a":1}</tool_call> @@@ café cafe\u0301 <|endoftext <|end|><|endoftext|>`;
const singleWord = `TODO_x x TODO\u200d TODO\u200cy x TODO\u0301 \u216bTODO \u00bdTODO TODO\u0663 TODO\u00b2 1TODO TODO. TODO\n(TODO)TODO`;
const infill = `func add(a, b int) int {\n\treturn <|mask|><|mask|><|mask|>\n}\n<|pad|><|pad|><|endoftext|>`;
const extraVocab = `the infill diffusion denoise 999 model: infill, diffusion; denoise999 infilling`;

module.exports = {
  corpus: [
    ['go', goCode], ['python', python], ['javascript', js], ['markdown', markdown],
    ['chinese', chinese], ['japanese', japanese], ['arabic', arabic], ['scripts', mixedScripts],
    ['emoji', emoji], ['numbers', numbers], ['contractions', contractions], ['whitespace', whitespace],
    ['crlf', crlf], ['nfc', nfc], ['control', control], ['long', longTokens], ['special', special], ['single_word', singleWord],
    ['infill', infill], ['extra_vocab', extraVocab], ['empty', ''], ['one_space', ' '], ['one_newline', '\n'],
  ],
  // Pieces for random strings: each hostile to some part of the split patterns.
  pieces: [
    ' ', '  ', '\t', '\n', '\r\n', '\r', '\u00a0', '\u3000', '\u0085', '\u2028', '\u000b', '\f', '\u1680',
    'a', 'Z', 'é', 'e\u0301', '\u0301', 'ſ', 'K', 'ß', '中', '文', 'の', 'ア', 'ب', 'ि', 'क', '1', '23', '٣', 'Ⅻ', '½',
    "'", "'s", "'S", "'ll", "'RE", "'d", "'t", "'ve", "'M", '_', '.', '(', ')', '{', '}', ':=', '//', '"', '\\',
    '😀', '👍🏽', '👨‍👩‍👧', '\u200d', '-', '+', '$', '#', 'func', ' x', 'x_1', '_a', 'a_', '1a', 'a1',
    '<|mask|>', '<|endoftext|>', '<|pad|>', '<mask>', ' [SEP] ', 'TODO', 'café', 'cafe\u0301', '<tool_call>', '@@@',
    'infill', ' diffusion', '999',
  ],
};
