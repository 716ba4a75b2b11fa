//! Database URLs as they may appear in logs: with every credential replaced.

/// The URL with every credential replaced by `***`, for logs: the password in the user info
/// (`user:password@`), and any query parameter that sqlx reads a secret from (`password`,
/// `sslpassword`, and, to be safe, any name containing `pass`, `secret` or `token`).
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = redact_user_info(base);
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// `scheme://user:password@host/…` with the password replaced. The user info ends at the last
/// `@` of the authority (a literal `@` in a password is sent percent-encoded).
fn redact_user_info(base: &str) -> String {
    let Some(scheme_end) = base.find("://").map(|i| i + 3) else {
        return base.to_owned();
    };
    let authority_end = base[scheme_end..]
        .find(['/', '#'])
        .map_or(base.len(), |i| scheme_end + i);
    let authority = &base[scheme_end..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!(
                "{}{user}:***{}",
                &base[..scheme_end],
                &base[scheme_end + at..]
            ),
            None => base.to_owned(),
        },
        None => base.to_owned(),
    }
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token"].iter().any(|w| name.contains(w))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(
            redact("postgres://u@h/db?password=secret&sslmode=disable"),
            "postgres://u@h/db?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("postgres://u:p%40ss@h/db?sslpassword=k&x=1"),
            "postgres://u:***@h/db?sslpassword=***&x=1"
        );
        // An `@` in the query is no user info.
        assert_eq!(
            redact("mysql://h/db?user=a@b&Password=s"),
            "mysql://h/db?user=a@b&Password=***"
        );
        assert_eq!(redact("sqlite://x.db?mode=rwc"), "sqlite://x.db?mode=rwc");
    }
}
