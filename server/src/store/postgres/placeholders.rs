//! The store's statements are written with SQLite's numbered parameters (`?1`, `?2`, and a
//! bare `?` for "one more than the largest so far"); PostgreSQL numbers them `$1`, `$2`. One
//! rewrite, aware of quoted strings and identifiers, lets one statement text serve both.

/// `sql` with every `?N` and bare `?` outside quotes written as PostgreSQL's `$N`.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut largest = 0u32;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = digits.parse().unwrap_or(largest + 1);
                largest = largest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            (None, c) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_postgres;

    #[test]
    fn numbered_and_bare_parameters_become_dollar_numbers() {
        assert_eq!(
            to_postgres("UPDATE t SET a = ?2 WHERE id = ?1 AND b = ?"),
            "UPDATE t SET a = $2 WHERE id = $1 AND b = $3"
        );
        assert_eq!(to_postgres("SELECT ?, ?"), "SELECT $1, $2");
        assert_eq!(to_postgres("VALUES (?10, ?2)"), "VALUES ($10, $2)");
    }

    #[test]
    fn question_marks_inside_quotes_are_left_alone() {
        assert_eq!(
            to_postgres("SELECT 'why?1', \"odd?col\" FROM t WHERE x = ?1"),
            "SELECT 'why?1', \"odd?col\" FROM t WHERE x = $1"
        );
        assert_eq!(
            to_postgres("SELECT 'it''s ?' WHERE y = ?"),
            "SELECT 'it''s ?' WHERE y = $1"
        );
    }
}
