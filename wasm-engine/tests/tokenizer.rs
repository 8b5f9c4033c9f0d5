//! Tokenizers: character and byte-level BPE, their serde forms, and Hugging Face
//! `tokenizer.json` checked against the `tokenizers` crate itself.

use std::str::FromStr;
use std::sync::LazyLock;

use engine::Error;
use engine::tokenizer::{BpeTokenizer, CharTokenizer, Tokenizer, pre_tokenize};

const KJV_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../static/data/kjv.txt");

static KJV: LazyLock<String> = LazyLock::new(|| {
    std::fs::read_to_string(KJV_PATH).expect("static/data/kjv.txt is in the repository")
});

/// The first `n` bytes of `text`, cut back to a line end.
fn head(text: &str, n: usize) -> &str {
    let end = text[..n].rfind('\n').map_or(n, |i| i + 1);
    &text[..end]
}

/// Text that a tokenizer trained on English never saw: emoji (with ZWJ sequences and skin
/// tones), CJK, combining marks, RTL, controls, whitespace runs and lone surrogates' neighbours.
const UNUSUAL: &[&str] = &[
    "",
    " ",
    "\n",
    "a",
    "In the beginning God created the heaven and the earth.",
    "👩‍👩‍👧‍👦 family, 👍🏽 thumbs, 🇳🇴 flag, 🎉!",
    "日本語のテキストと中文文本，한국어 텍스트。",
    "e\u{301}\u{302}\u{303} Z\u{351}\u{34b}\u{35b}a\u{317}l\u{31d}g\u{31c}o",
    "שלום עולם مرحبا بالعالم",
    "tabs\t\tand  spaces   and\n\n\nnewlines \r\n\r\n  ",
    "     ",
    "\u{0}\u{1}\u{7f}\u{80}\u{a0}\u{ad}\u{feff}\u{fffd}\u{10ffff}",
    "it's we're they've I'm you'll he'd 'tis",
    "1234567890 3.14159 -42 ½ ⅷ ٣",
];

#[test]
fn char_vocab_is_the_sorted_distinct_chars_and_round_trips() {
    let t = CharTokenizer::from_text("hello world").unwrap();
    assert_eq!(t.chars(), &[' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
    assert_eq!(t.vocab_size(), 8);
    assert_eq!(t.encode("hello").unwrap(), vec![3, 2, 4, 4, 5]);
    assert_eq!(t.decode(&[7, 5, 6, 4, 1]).unwrap(), "world");

    // The corpus: 63 distinct characters, newline first, and a lossless round trip.
    let t = CharTokenizer::from_text(&KJV).unwrap();
    assert_eq!(t.vocab_size(), 63);
    assert_eq!(t.chars()[..3], ['\n', ' ', '!']);
    let ids = t.encode(&KJV).unwrap();
    assert_eq!(ids.len(), KJV.chars().count());
    assert_eq!(t.decode(&ids).unwrap(), *KJV);
}

#[test]
fn char_unknown_char_is_a_tokenizer_error_naming_it() {
    let t = CharTokenizer::from_text("abc").unwrap();
    match t.encode("cab é") {
        Err(Error::Tokenizer(msg)) => assert!(msg.contains("' '"), "{msg}"),
        other => panic!("expected a tokenizer error, got {other:?}"),
    }
    match t.encode("abé") {
        Err(Error::Tokenizer(msg)) => assert!(msg.contains("'é' (U+00E9)"), "{msg}"),
        other => panic!("expected a tokenizer error, got {other:?}"),
    }
    assert!(matches!(t.decode(&[0, 3]), Err(Error::Tokenizer(_))));
}

#[test]
fn char_empty_text_is_an_error() {
    assert!(matches!(
        CharTokenizer::from_text(""),
        Err(Error::Corpus(_))
    ));
}

#[test]
fn pre_tokenize_splits_like_gpt2() {
    // `\s+(?!\S)` leaves the last space of a run to the word after it.
    assert_eq!(
        pre_tokenize("Hello   world's 123!!\n\n").unwrap(),
        ["Hello", "  ", " world", "'s", " 123", "!!", "\n\n"]
    );
    for text in UNUSUAL {
        assert_eq!(pre_tokenize(text).unwrap().concat(), *text);
    }
}

#[test]
fn bpe_learns_the_hand_checked_merges() {
    // "aaabdaaabac" is one chunk. Pair counts, overlaps included:
    //   aa 4, ab 2, bd 1, da 1, ba 1, ac 1      -> merge (a, a) = 256, "ZabdZabac"
    //   Za 2, ab 2, bd 1, dZ 1, ba 1, ac 1      -> tie: (97, 98) < (256, 97), merge (a, b) = 257,
    //                                              "ZYdZYac"
    //   ZY 2, Yd 1, dZ 1, Ya 1, ac 1            -> merge (256, 257) = 258, "XdXac"
    // (Wikipedia's "Byte pair encoding" example: Z=aa, Y=ab, X=ZY.)
    let mut calls = Vec::new();
    let t = BpeTokenizer::train_with_progress("aaabdaaabac", 256 + 3, |done, total| {
        calls.push((done, total))
    })
    .unwrap();
    assert_eq!(t.merges(), &[(97, 97), (97, 98), (256, 257)]);
    assert_eq!(calls, [(1, 3), (2, 3), (3, 3)]);
    assert_eq!(t.vocab_size(), 259);
    assert_eq!(t.token_bytes(258), Some(&b"aaab"[..]));
    assert_eq!(t.token_bytes(259), None);
    assert_eq!(t.encode("aaabdaaabac").unwrap(), [258, 100, 258, 97, 99]);
    // Merges apply in the order learned: in "aab", (a, a) (rank 0) beats (a, b) (rank 1).
    assert_eq!(t.encode("aab").unwrap(), [256, 98]);
    // minbpe's merge is greedy from the left: "aaaa" is (aa)(aa), "aaa" is (aa)a.
    assert_eq!(t.encode("aaaa aaa").unwrap(), [256, 256, 32, 256, 97]);
    assert_eq!(t.decode(&[258, 100, 258, 97, 99]).unwrap(), "aaabdaaabac");
}

#[test]
fn bpe_merges_stay_within_chunks() {
    // " the" is a chunk of its own, so "e t" (across the space) is never a pair; merges
    // are (h, e), then (t, he), then (space, the).
    let t = BpeTokenizer::train("the the the", 256 + 3).unwrap();
    assert_eq!(t.merges(), &[(104, 101), (116, 256), (32, 257)]);
    assert_eq!(t.encode("the the").unwrap(), [257, 258]);
}

#[test]
fn bpe_stops_early_when_no_pair_is_left() {
    let t = BpeTokenizer::train("ab ab", 1000).unwrap();
    // (a, b) then (space, ab): every chunk is one token.
    assert_eq!(t.merges(), &[(97, 98), (32, 256)]);
    assert_eq!(t.vocab_size(), 258);
}

#[test]
fn bpe_rejects_a_small_vocab_and_empty_text() {
    assert!(matches!(
        BpeTokenizer::train("abc", 255),
        Err(Error::Config { ref field, .. }) if field == "vocab_size"
    ));
    assert!(matches!(
        BpeTokenizer::train("", 300),
        Err(Error::Corpus(_))
    ));
    // 256 is a plain byte tokenizer.
    let bytes = BpeTokenizer::train("abc", 256).unwrap();
    assert_eq!(bytes.encode("hé").unwrap(), [104, 0xc3, 0xa9]);
}

#[test]
fn bpe_merges_must_be_in_order_with_distinct_bytes() {
    // (a, b) = 256, (b, c) = 257, (256, c) = 258 "abc"; then (a, 257) would spell "abc" again.
    let ok = BpeTokenizer::from_merges(vec![(97, 98), (98, 99), (256, 99)]).unwrap();
    assert_eq!(ok.token_bytes(258), Some(&b"abc"[..]));
    match BpeTokenizer::from_merges(vec![(97, 98), (98, 99), (256, 99), (97, 257)]) {
        Err(Error::Tokenizer(msg)) => assert!(msg.contains("token 258"), "{msg}"),
        other => panic!("expected a tokenizer error, got {other:?}"),
    }
    // A merge may only use tokens made before it.
    assert!(matches!(
        BpeTokenizer::from_merges(vec![(97, 257), (98, 99)]),
        Err(Error::Tokenizer(_))
    ));
    assert!(matches!(
        BpeTokenizer::from_merges(vec![(97, 98), (97, 98)]),
        Err(Error::Tokenizer(_))
    ));
}

#[test]
fn bpe_round_trips_any_utf8() {
    let t = BpeTokenizer::train(head(&KJV, 200_000), 256 + 100).unwrap();
    for text in UNUSUAL {
        let ids = t.encode(text).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), *text, "{ids:?}");
        assert_eq!(t.decode_bytes(&ids).unwrap(), text.as_bytes());
    }
    // Unseen characters fall back to their bytes: 👍 is F0 9F 91 8D.
    assert_eq!(t.encode("👍").unwrap(), [0xf0, 0x9f, 0x91, 0x8d]);
    // Ids that end inside a character decode with U+FFFD, not an error.
    assert_eq!(t.decode(&[0xf0, 0x9f]).unwrap(), "\u{fffd}");
    assert!(matches!(t.decode(&[356]), Err(Error::Tokenizer(_))));
}

#[test]
fn tokenizer_enum_serde_is_tagged_by_kind() {
    let char_t = Tokenizer::Char(CharTokenizer::from_text("ba\n").unwrap());
    let json = serde_json::to_string(&char_t).unwrap();
    assert_eq!(json, r#"{"kind":"char","chars":"\nab"}"#);
    assert_eq!(serde_json::from_str::<Tokenizer>(&json).unwrap(), char_t);

    let bpe = Tokenizer::Bpe(BpeTokenizer::train("aaabdaaabac", 259).unwrap());
    let json = serde_json::to_string(&bpe).unwrap();
    assert_eq!(
        json,
        r#"{"kind":"bpe","merges":[[97,97],[97,98],[256,257]]}"#
    );
    let back: Tokenizer = serde_json::from_str(&json).unwrap();
    assert_eq!(back, bpe);
    assert_eq!(back.vocab_size(), 259);
    assert_eq!(back.encode("aaab").unwrap(), [258]);
    assert_eq!(back.decode(&[258, 100]).unwrap(), "aaabd");

    // A corrupt config is a JSON error that says what is wrong.
    for bad in [
        r#"{"kind":"bpe","merges":[[97,300]]}"#,
        r#"{"kind":"char","chars":"ba"}"#,
        r#"{"kind":"char","chars":""}"#,
        r#"{"kind":"wordpiece"}"#,
    ] {
        assert!(
            matches!(
                serde_json::from_str::<Tokenizer>(bad).map_err(Error::from),
                Err(Error::Json(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn hf_json_is_gpt2_layout_and_round_trips() {
    let t = BpeTokenizer::train(head(&KJV, 300_000), 256 + 200).unwrap();
    let json = t.to_hf_json().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["model"]["type"], "BPE");
    assert_eq!(v["pre_tokenizer"]["type"], "ByteLevel");
    assert_eq!(v["pre_tokenizer"]["add_prefix_space"], false);
    assert_eq!(v["decoder"]["type"], "ByteLevel");
    // Bytes in GPT-2's alphabet: space is Ġ, newline Ċ, 'a' itself, 0xFF ÿ, 0x00 Ā.
    let vocab = &v["model"]["vocab"];
    assert_eq!(vocab["Ġ"], 32);
    assert_eq!(vocab["Ċ"], 10);
    assert_eq!(vocab["a"], 97);
    assert_eq!(vocab["ÿ"], 255);
    assert_eq!(vocab["Ā"], 0);
    let merges = v["model"]["merges"].as_array().unwrap();
    assert_eq!(merges.len(), 200);
    // Rank order: the first merge is the first one learned.
    let (l, r) = t.merges()[0];
    let spell = |id: u32| {
        String::from_utf8(t.token_bytes(id).unwrap().to_vec())
            .unwrap()
            .replace(' ', "Ġ")
            .replace('\n', "Ċ")
    };
    assert_eq!(merges[0], serde_json::json!([spell(l), spell(r)]));

    let back = BpeTokenizer::from_hf_json(&json).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.to_hf_json().unwrap(), json);
}

/// Our encoder and Hugging Face's, loading our exported file, give the same ids: trained on the
/// first ~1 MB of the corpus, encoding its last 10% (the validation split) and the odd texts.
#[test]
fn hf_tokenizers_crate_encodes_exactly_as_we_do() {
    let train = head(&KJV, 1_000_000);
    let val = &KJV[KJV.len() - KJV.len() / 10..];

    let t = BpeTokenizer::train(train, 512).unwrap();
    assert_eq!(t.vocab_size(), 512);
    let hf = tokenizers::Tokenizer::from_str(&t.to_hf_json().unwrap()).unwrap();
    assert_eq!(hf.get_vocab_size(true), 512);

    let ours = t.encode(val).unwrap();
    let theirs = hf.encode(val, false).unwrap().get_ids().to_vec();
    assert_eq!(ours.len(), theirs.len());
    assert!(ours == theirs, "first difference at {:?}", {
        ours.iter().zip(&theirs).position(|(a, b)| a != b)
    });
    assert_eq!(t.decode(&ours).unwrap(), val);
    assert_eq!(hf.decode(&theirs, false).unwrap(), val);
    // 512 tokens compress English well past one token per 2 bytes.
    assert!(val.len() as f64 / ours.len() as f64 > 2.0);

    for text in UNUSUAL {
        let theirs = hf.encode(*text, false).unwrap().get_ids().to_vec();
        assert_eq!(t.encode(text).unwrap(), theirs, "{text:?}");
    }
}

#[test]
fn bad_tokenizer_json_is_a_tokenizer_error() {
    let good = BpeTokenizer::train("aaabdaaabac", 259)
        .unwrap()
        .to_hf_json()
        .unwrap();
    let good: serde_json::Value = serde_json::from_str(&good).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        v.to_string()
    };
    let cases = [
        ("not json", "{ this is not json".to_string()),
        ("empty object", "{}".to_string()),
        (
            "lowercasing normalizer",
            edit(&|v| v["normalizer"] = serde_json::json!({"type": "Lowercase"})),
        ),
        (
            "whitespace pre-tokenizer",
            edit(&|v| v["pre_tokenizer"] = serde_json::json!({"type": "Whitespace"})),
        ),
        (
            "prefix space",
            edit(&|v| v["pre_tokenizer"]["add_prefix_space"] = true.into()),
        ),
        (
            "merge of an unknown token",
            edit(&|v| v["model"]["merges"][0] = serde_json::json!(["a", "q€"])),
        ),
        (
            "bytes in another order",
            edit(&|v| {
                v["model"]["vocab"]["a"] = 98.into();
                v["model"]["vocab"]["b"] = 97.into();
            }),
        ),
        (
            "missing merge",
            edit(&|v| {
                v["model"]["merges"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "added special token",
            edit(&|v| {
                v["model"]["vocab"]["<|endoftext|>"] = 259.into();
                v["added_tokens"] = serde_json::json!([{
                    "id": 259, "content": "<|endoftext|>", "single_word": false,
                    "lstrip": false, "rstrip": false, "normalized": false, "special": true
                }]);
            }),
        ),
    ];
    for (what, json) in cases {
        match BpeTokenizer::from_hf_json(&json) {
            Err(Error::Tokenizer(msg)) => assert!(msg.contains("tokenizer.json"), "{what}: {msg}"),
            other => panic!("{what}: expected a tokenizer error, got {other:?}"),
        }
    }
}
