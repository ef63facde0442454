//! Text helpers the jobs share.

/// Calls `f` with each word of `line`, lowercased.
pub fn for_each_word(line: &str, mut f: impl FnMut(&str)) {
    let mut lower = String::new();
    for word in line
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if word
            .bytes()
            .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
        {
            lower.clear();
            lower.push_str(&word.to_lowercase());
            f(&lower);
        } else {
            f(word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_word(line, |w| out.push(w.to_owned()));
        out
    }

    #[test]
    fn words_are_lowercased_alphanumeric_runs() {
        assert_eq!(
            words("Hello, WORLD! foo_bar x2 ÉCOLE straße--Ünï  "),
            vec![
                "hello", "world", "foo", "bar", "x2", "école", "straße", "ünï"
            ]
        );
        assert!(words(" ,;: ").is_empty());
    }
}
