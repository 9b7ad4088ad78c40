/**
 * Builds a Hugging Face tokenizer.json for a CLIP-style byte-level BPE with a small vocabulary.
 * Its structure (normalizer, pre-tokenizer, BPE with "</w>" word ends, RobertaProcessing with
 * BOS 49406 / EOS 49407) is that of openai/clip-vit-base-patch32, the tokenizer SAM3 uses, so
 * the engine reads the tiny file and the real one through the same code.
 */
import { BOS_ID, EOS_ID } from "../contract.js";
import { COLOUR_WORDS, MERGE_ID_BASE, PLAIN_WORDS } from "./layout.js";

const BOS = "<|startoftext|>";
const EOS = "<|endoftext|>";

/** GPT-2/CLIP byte-to-unicode table, in CLIP's vocabulary order (ids 0-255). */
export function byteUnicodeAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = printable.map((b) => String.fromCodePoint(b));
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) chars.push(String.fromCodePoint(256 + n++));
  }
  return chars;
}

/** Byte-level BPE of one lower-case ASCII word: repeatedly joins the best-ranked adjacent pair. */
function applyMerges(word: string, rank: ReadonlyMap<string, number>): string[] {
  const symbols = [...word].map((ch, i) => (i === word.length - 1 ? `${ch}</w>` : ch));
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const r = rank.get(`${symbols[i]} ${symbols[i + 1]}`);
      if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
    }
    if (best < 0) return symbols;
    symbols.splice(best, 2, symbols[best]! + symbols[best + 1]!);
  }
}

export function buildTokenizerJson(): object {
  const vocab = new Map<string, number>();
  const alphabet = byteUnicodeAlphabet();
  alphabet.forEach((ch, i) => vocab.set(ch, i));
  alphabet.forEach((ch, i) => vocab.set(`${ch}</w>`, 256 + i));

  // Merges are added word by word at the lowest priority: simulate BPE with the merges so far and
  // join the first two symbols until the word is one token. Earlier words keep their tokenisation
  // because a merge of lower priority never fires while one of theirs can.
  const merges: [string, string][] = [];
  const rank = new Map<string, number>();
  let nextMergeId = MERGE_ID_BASE;
  for (const { word, id } of [...PLAIN_WORDS, ...COLOUR_WORDS]) {
    for (;;) {
      const symbols = applyMerges(word, rank);
      if (symbols.length === 1) {
        if (vocab.get(symbols[0]!) !== id) throw new Error(`"${word}" did not end as its own token`);
        break;
      }
      const [a, b] = [symbols[0]!, symbols[1]!];
      const merged = a + b;
      rank.set(`${a} ${b}`, merges.length);
      merges.push([a, b]);
      if (!vocab.has(merged)) vocab.set(merged, symbols.length === 2 ? id : nextMergeId++);
    }
  }

  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      { id: BOS_ID, content: BOS, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
      { id: EOS_ID, content: EOS, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "NFC" },
        { type: "Replace", pattern: { Regex: "\\s+" }, content: " " },
        { type: "Lowercase" },
      ],
    },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: {
            Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: "Removed",
          invert: true,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "RobertaProcessing",
      sep: [EOS, EOS_ID],
      cls: [BOS, BOS_ID],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: EOS,
      continuing_subword_prefix: "",
      end_of_word_suffix: "</w>",
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries([...vocab, [BOS, BOS_ID], [EOS, EOS_ID]]),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}
