/**
 * CLIP BPE tokenisation to SAM3's fixed 32-token layout (sam3-model.md section 4):
 * [BOS, up to 30 BPE ids, EOS, EOS padding...], attention mask 1 for BOS..EOS.
 * Normalisation (NFC, whitespace collapse, lower case) and BPE come from the model directory's
 * tokenizer.json through @huggingface/tokenizers; only the framing is done here.
 */
import { readFile } from "node:fs/promises";
import { Tokenizer } from "@huggingface/tokenizers";
import { BOS_ID, EOS_ID, TEXT_LENGTH } from "../models/contract.js";

export interface TokenizedText {
  /** Exactly TEXT_LENGTH ids. */
  readonly ids: readonly number[];
  /** Exactly TEXT_LENGTH entries, 1 for BOS..EOS, 0 for padding. */
  readonly attentionMask: readonly number[];
}

export class ClipTokenizer {
  private constructor(private readonly tokenizer: Tokenizer) {}

  static async fromFile(path: string): Promise<ClipTokenizer> {
    const json: unknown = JSON.parse(await readFile(path, "utf8"));
    return ClipTokenizer.fromJson(json);
  }

  static fromJson(json: unknown): ClipTokenizer {
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json as object, {});
    } catch (err) {
      throw new Error(`tokenizer.json is not a usable Hugging Face tokenizer: ${(err as Error).message}`);
    }
    const bos = tokenizer.token_to_id("<|startoftext|>");
    const eos = tokenizer.token_to_id("<|endoftext|>");
    if (bos !== BOS_ID || eos !== EOS_ID) {
      throw new Error(`tokenizer.json is not a CLIP tokenizer: BOS/EOS ids are ${bos}/${eos}, expected ${BOS_ID}/${EOS_ID}`);
    }
    return new ClipTokenizer(tokenizer);
  }

  encode(text: string): TokenizedText {
    const bpe = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    // Truncation keeps EOS last: BOS + the first 30 BPE ids + EOS (Meta: tokens[:32]; tokens[-1] = eot).
    const body = bpe.slice(0, TEXT_LENGTH - 2);
    const ids = [BOS_ID, ...body, EOS_ID];
    const attentionMask = ids.map(() => 1);
    while (ids.length < TEXT_LENGTH) {
      ids.push(EOS_ID);
      attentionMask.push(0);
    }
    return { ids, attentionMask };
  }
}
