//! Temporary: replaced by the full multilingual number extraction.
pub fn final_number(text: &str, _lang: &str) -> Option<i64> {
    let mut last = None;
    let mut cur: Option<i64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            cur = Some(cur.unwrap_or(0) * 10 + d as i64);
        } else if c != ',' {
            if cur.is_some() {
                last = cur;
            }
            cur = None;
        }
    }
    cur.or(last)
}
