//! A translation task we can make ourselves, for the encoder-decoder of lesson C4: the whole
//! numbers 0 to 9999 written in English words, paired with their digits
//! (`"four thousand two hundred seven"` → `"4207"`), with a seeded held-out split so that
//! accuracy is measured on numbers the model never saw.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The numbers of the task: `0..LIMIT`.
pub const LIMIT: u32 = 10_000;

/// How many numbers the shipped T5 (`cargo xtask assets`) never saw in training.
pub const HELD_OUT: usize = 1000;

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// `n < 100` in words, with a hyphen between tens and ones (`forty-two`).
fn below_hundred(n: u32) -> String {
    match n {
        0..20 => ONES[n as usize].to_string(),
        _ if n.is_multiple_of(10) => TENS[(n / 10) as usize].to_string(),
        _ => format!("{}-{}", TENS[(n / 10) as usize], ONES[(n % 10) as usize]),
    }
}

/// `n` (below [`LIMIT`]) in American English words, without "and":
/// `words(4207) == "four thousand two hundred seven"`.
pub fn words(n: u32) -> String {
    assert!(n < LIMIT, "words() covers 0..{LIMIT}, got {n}");
    if n < 100 {
        return below_hundred(n);
    }
    let mut parts = Vec::new();
    if n >= 1000 {
        parts.push(format!("{} thousand", ONES[(n / 1000) as usize]));
    }
    if n % 1000 >= 100 {
        parts.push(format!("{} hundred", ONES[(n % 1000 / 100) as usize]));
    }
    if !n.is_multiple_of(100) {
        parts.push(below_hundred(n % 100));
    }
    parts.join(" ")
}

/// The numbers shuffled by `seed` and cut in two: `(train, held_out)`, `held_out` of them
/// held out.
pub fn split(seed: u64, held_out: usize) -> (Vec<u32>, Vec<u32>) {
    let mut all: Vec<u32> = (0..LIMIT).collect();
    all.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let test = all.split_off(all.len() - held_out.min(all.len()));
    (all, test)
}

/// Whether `n` is among the `held_out` numbers of [`split`]`(seed, held_out)`.
pub fn is_held_out(n: u32, seed: u64, held_out: usize) -> bool {
    split(seed, held_out).1.contains(&n)
}

/// Every character either side of the task uses, for the tokenizer.
pub fn alphabet() -> String {
    let mut text: String = (0..LIMIT).map(|n| words(n) + " ").collect();
    text.push_str("0123456789");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_by_hand() {
        assert_eq!(words(0), "zero");
        assert_eq!(words(13), "thirteen");
        assert_eq!(words(40), "forty");
        assert_eq!(words(42), "forty-two");
        assert_eq!(words(100), "one hundred");
        assert_eq!(words(1005), "one thousand five");
        assert_eq!(words(4207), "four thousand two hundred seven");
        assert_eq!(words(9999), "nine thousand nine hundred ninety-nine");
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let (train, test) = split(3, 1000);
        assert_eq!((train.len(), test.len()), (9000, 1000));
        assert_eq!(split(3, 1000), (train.clone(), test.clone()));
        let mut all: Vec<u32> = train.into_iter().chain(test).collect();
        all.sort_unstable();
        assert_eq!(all, (0..LIMIT).collect::<Vec<_>>());
    }
}
