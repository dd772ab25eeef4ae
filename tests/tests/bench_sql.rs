//! The pgbench scripts in `scripts/bench-db.d/` are hand copies of the services' SQL:
//! every copied statement sits under an annotation comment naming the service and the
//! Rust function it mirrors. This test reads both sides (files only: no database, no
//! workspace crate) and fails when a copy no longer matches its function's SQL.
//!
//! An annotation is one comment line (continued on the next when it ends with `,`):
//!
//! ```text
//! -- <service>  [<context> · ]<function>[ (note)][, <function>[ (note)]]...
//! ```
//!
//! `<service>` is `order`, `inventory`, `payment`, `email`, `coordinator` or `shared`
//! (the shared crate); without it the annotation takes the previous one's. Functions
//! are paths: `db::insert_order`, `log::fetch_saga` (`services/order/src/saga/log.rs`),
//! `participant::is_prepared` (a path that starts with a crate under `shared/` is
//! looked for in that crate), `IdempotencyStore::claim` (a type's method; looked for
//! in the service, then in the crates under `shared/`). Notes in parentheses are
//! ignored. The statements after an annotation, up to the next annotation or blank
//! line (other comments aside), must each match an SQL string of a named function;
//! a function's SQL includes what the functions it calls issue. Every function named
//! after the `·` must be matched by at least one of those statements; functions named
//! before it are the callers: they must exist, and what they issue matches too (the
//! `SET LOCAL lock_timeout` of `routes::reserve`, say). A statement without an
//! annotation fails the test, unless it is scaffolding (below) or declared in
//! [`BENCH_ONLY`].
//!
//! Both sides are compared token by token (whitespace and keyword case aside): a bind
//! (`$1`, or a value spliced in with `format!`) matches one value expression of the
//! copy (a literal, a pgbench `:variable`, an `@PLACEHOLDER@`, `ARRAY[...]`, a
//! function call over values, `||` and casts); everything else must be equal. Where a
//! copy deliberately differs, the difference is declared in [`REWRITES`] or
//! [`BENCH_ONLY`], with its reason. Transaction control (`BEGIN`, `COMMIT`,
//! `PREPARE TRANSACTION`, `COMMIT PREPARED`, ...) and pgbench's `\gset` set-up
//! queries are the scripts' own scaffolding and are not compared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

/// The scripts' folder, relative to the workspace root.
const BENCH_DIR: &str = "scripts/bench-db.d";

/// Files of the folder that mirror no service statement.
const SKIPPED_FILES: &[(&str, &str)] = &[(
    "setup.sql",
    "bench set-up after the migrations (a uuid helper, stock that never runs out); no service issues it",
)];

/// The service words of an annotation, and where their code lives.
const ROOTS: &[(&str, &str)] = &[
    ("order", "services/order/src"),
    ("inventory", "services/inventory/src"),
    ("payment", "services/payment/src"),
    ("email", "services/email/src"),
    ("coordinator", "services/coordinator/src"),
    ("shared", "shared/src"),
];

/// The crates under `shared/`, by the name code uses for them: a path that starts with
/// one (`participant::is_prepared`) is looked for in that crate alone.
const SHARED_CRATES: &[(&str, &str)] = &[
    ("shared", "shared/src"),
    ("participant", "shared/participant/src"),
    ("client", "shared/client/src"),
    ("base", "shared/base/src"),
];

/// A deliberate difference between a copy and the statement it mirrors: in `file`, a
/// statement matched against `function` has the tokens of `bench` replaced by those
/// of `service` before the comparison. Each must be used, or the test fails.
struct Rewrite {
    file: &'static str,
    function: &'static str,
    bench: &'static str,
    service: &'static str,
    reason: &'static str,
}

const REWRITES: &[Rewrite] = &[Rewrite {
    file: "email-dispatch.sql",
    function: "db::claim_due_emails",
    bench: "AND (locked_until IS NULL OR locked_until < now()) AND id = :email_id",
    service: "AND (locked_until IS NULL OR locked_until < now())",
    reason: "the dispatcher claims every due email in one statement per poll; in the benchmark each \
             checkout claims its own email, or concurrent pgbench clients would claim each other's",
}];

/// Statements of a script with no service counterpart: skipped, each with its reason.
/// Each must be found, or the test fails.
struct BenchOnly {
    file: &'static str,
    /// The statement's start, whitespace collapsed.
    starts_with: &'static str,
    reason: &'static str,
}

const BENCH_ONLY: &[BenchOnly] = &[
    BenchOnly {
        file: "hot-plain.sql",
        starts_with: "UPDATE products SET available = available - 1, sold = sold + 1 WHERE sku = 'BENCH-HOT'",
        reason: "the hot-row benchmark's stock move, one statement straight from available to sold; the \
                 services move stock through reserved in two (db::insert_reservation_lines, \
                 db::update_reservation_state)",
    },
    BenchOnly {
        file: "hot-prepared.sql",
        starts_with: "UPDATE products SET available = available - 1, sold = sold + 1 WHERE sku = 'BENCH-HOT'",
        reason: "the same stock move as hot-plain.sql, for the prepared-transaction variant",
    },
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------

#[test]
fn bench_scripts_mirror_the_services_sql() {
    let root = workspace_root();
    let mut code = Code::new(&root);
    let mut failures = Vec::new();
    let mut rewrites_used = vec![0usize; REWRITES.len()];
    let mut bench_only_used = vec![0usize; BENCH_ONLY.len()];
    let mut compared = 0usize;

    let mut files: Vec<PathBuf> = fs::read_dir(root.join(BENCH_DIR))
        .expect("scripts/bench-db.d exists")
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() > 5, "too few scripts found in {BENCH_DIR}: {files:?}");

    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if SKIPPED_FILES.iter().any(|(f, _)| *f == name) {
            continue;
        }
        let shown = format!("{BENCH_DIR}/{name}");
        let text = fs::read_to_string(path).expect("a readable script");
        let before = compared;
        check_script(
            &shown,
            &name,
            &text,
            &mut code,
            &mut Tally {
                failures: &mut failures,
                rewrites_used: &mut rewrites_used,
                bench_only_used: &mut bench_only_used,
                compared: &mut compared,
            },
        );
        if compared == before {
            failures.push(format!(
                "{shown}: no statement was compared; every script but {SKIPPED_FILES:?} mirrors service SQL"
            ));
        }
    }
    for (rewrite, used) in REWRITES.iter().zip(&rewrites_used) {
        if *used == 0 {
            failures.push(format!(
                "declared rewrite for {} in {BENCH_DIR}/{} was not used (the copy changed? remove or fix \
                 it): {:?} -> {:?} ({})",
                rewrite.function, rewrite.file, rewrite.bench, rewrite.service, rewrite.reason
            ));
        }
    }
    for (only, used) in BENCH_ONLY.iter().zip(&bench_only_used) {
        if *used == 0 {
            failures.push(format!(
                "declared bench-only statement not found in {BENCH_DIR}/{} (remove or fix it): {:?} ({})",
                only.file, only.starts_with, only.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) between {BENCH_DIR} and the services' SQL ({compared} statements compared):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        compared >= 100,
        "only {compared} statements compared: is the parser missing some?"
    );
}

/// The comparison is strict where it matters: a bind takes a value, never a column.
#[test]
fn a_changed_column_or_keyword_does_not_match() {
    let service = "UPDATE emails SET state = 'delivered', attempts = attempts + 1 WHERE id = $1 AND kind = $2::text";
    let ok = "UPDATE emails SET state = 'delivered', attempts = attempts + 1 WHERE id = :email_id AND kind = 'x'";
    assert!(same(service, ok));
    for bad in [
        "UPDATE emails SET status = 'delivered', attempts = attempts + 1 WHERE id = :email_id AND kind = 'x'",
        "UPDATE emails SET state = 'delivered', attempts = attempts + 2 WHERE id = :email_id AND kind = 'x'",
        "UPDATE emails SET state = 'sent', attempts = attempts + 1 WHERE id = :email_id AND kind = 'x'",
        "UPDATE emails SET state = 'delivered', attempts = attempts + 1 WHERE id = :email_id AND kind = 'x' \
         AND state = 'pending'",
        "UPDATE emails SET state = 'delivered', attempts = attempts + 1 WHERE id = order_id AND kind = 'x'",
        "UPDATE emails SET state = 'delivered', attempts = attempts + 1 WHERE id = :email_id AND kind = :k::int",
    ] {
        assert!(!same(service, bad), "{bad}");
    }
    assert!(same(
        "SELECT $1, * FROM unnest($2::text[], $3::int[]) WITH ORDINALITY",
        "SELECT :order_id, * FROM unnest(ARRAY[:sku::text], ARRAY[1]::int[]) WITH ORDINALITY"
    ));
    assert!(same(
        "INSERT INTO t (a, b) VALUES ($1, now() + make_interval(secs => $2 / 1000.0))",
        "insert into t (a,b) values ('x' || :v::text, now() + make_interval(secs => 10000 / 1000.0))"
    ));
    assert!(!same(
        "INSERT INTO t (a, b) VALUES ($1, $2)",
        "INSERT INTO t (a, c) VALUES (1, 2)"
    ));
}

fn same(service: &str, bench: &str) -> bool {
    let s = service_tokens(service).unwrap();
    let b = bench_tokens(bench).unwrap();
    matches(&s, &b)
}

struct Tally<'a> {
    failures: &'a mut Vec<String>,
    rewrites_used: &'a mut [usize],
    bench_only_used: &'a mut [usize],
    compared: &'a mut usize,
}

fn check_script(shown: &str, name: &str, text: &str, code: &mut Code, tally: &mut Tally<'_>) {
    let (script, errors) = parse_script(text);
    for (line, e) in errors {
        tally.failures.push(format!("{shown}:{line}: {e}"));
    }
    // The annotations' functions, resolved; `None` where resolving failed.
    let mut resolved: Vec<Option<(Vec<Resolved>, Vec<Resolved>)>> = Vec::new();
    for ann in &script.annotations {
        let mut ok = true;
        let mut resolve = |names: &[String]| -> Vec<Resolved> {
            let mut out = Vec::new();
            for n in names {
                match code.resolve_annotated(&ann.service, n) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        ok = false;
                        tally.failures.push(format!(
                            "{shown}:{}: the annotation names `{n}` (service {}), which cannot be found: {e}\n  \
                             annotation: -- {}",
                            ann.line, ann.service, ann.text
                        ));
                    }
                }
            }
            out
        };
        let list = resolve(&ann.list);
        let context = resolve(&ann.context);
        resolved.push(ok.then_some((list, context)));
    }
    let mut matched_list: Vec<Vec<bool>> = script.annotations.iter().map(|a| vec![false; a.list.len()]).collect();

    for stmt in &script.statements {
        let flat = collapse_ws(&stmt.text);
        if is_scaffolding(&flat) {
            continue;
        }
        if let Some(k) = BENCH_ONLY
            .iter()
            .position(|b| b.file == name && flat.starts_with(b.starts_with))
        {
            tally.bench_only_used[k] += 1;
            continue;
        }
        let Some(a) = stmt.annotation else {
            tally.failures.push(format!(
                "{shown}:{}: a statement with no annotation naming the function it mirrors (add `-- <service>  \
                 module::function` above it, or declare it in BENCH_ONLY with a reason):\n  {flat}",
                stmt.line
            ));
            continue;
        };
        let ann = &script.annotations[a];
        let Some((list, context)) = &resolved[a] else {
            continue; // reported with the annotation
        };
        let mut bench = match bench_tokens(&stmt.text) {
            Ok(t) => t,
            Err(e) => {
                tally
                    .failures
                    .push(format!("{shown}:{}: cannot read the statement: {e}", stmt.line));
                continue;
            }
        };
        let mut applied = Vec::new();
        for (k, rewrite) in REWRITES.iter().enumerate() {
            if rewrite.file == name && ann.list.iter().any(|f| f == rewrite.function) {
                let from = bench_tokens(rewrite.bench).expect("a rewrite's bench side tokenises");
                let to = bench_tokens(rewrite.service).expect("a rewrite's service side tokenises");
                if let Some(at) = find_subsequence(&bench, &from) {
                    bench.splice(at..at + from.len(), to);
                    tally.rewrites_used[k] += 1;
                    applied.push(rewrite);
                }
            }
        }
        *tally.compared += 1;
        let mut found = false;
        for (k, r) in list.iter().enumerate() {
            if r.candidates.iter().any(|c| matches(&c.tokens, &bench)) {
                matched_list[a][k] = true;
                found = true;
            }
        }
        if !found {
            found = context
                .iter()
                .any(|r| r.candidates.iter().any(|c| matches(&c.tokens, &bench)));
        }
        if !found {
            tally
                .failures
                .push(mismatch_report(shown, stmt, ann, (list, context), &applied, &bench));
        }
    }
    for (a, ann) in script.annotations.iter().enumerate() {
        let Some((list, _)) = &resolved[a] else { continue };
        for (k, r) in list.iter().enumerate() {
            if !matched_list[a][k] {
                let sqls: String = r
                    .candidates
                    .iter()
                    .map(|c| format!("\n    {}: {}", c.origin, render(&c.tokens)))
                    .collect();
                tally.failures.push(format!(
                    "{shown}:{}: the annotation names `{}` ({}), but no statement under it (up to the next \
                     annotation or blank line) matches its SQL{}\n  annotation: -- {}",
                    ann.line,
                    ann.list[k],
                    r.location,
                    if sqls.is_empty() {
                        " (it issues none)".to_owned()
                    } else {
                        format!(", which is:{sqls}")
                    },
                    ann.text
                ));
            }
        }
    }
}

fn mismatch_report(
    shown: &str,
    stmt: &Statement,
    ann: &Annotation,
    (list, context): (&[Resolved], &[Resolved]),
    applied: &[&Rewrite],
    bench: &[SqlTok],
) -> String {
    let mut out = format!(
        "{shown}:{}: the statement matches no SQL of the function(s) it names\n  annotation (line {}): -- {}\n  \
         {shown}:{}:\n    {}",
        stmt.line,
        ann.line,
        ann.text,
        stmt.line,
        render(bench)
    );
    for rewrite in applied {
        let _ = write!(
            out,
            "\n  (after the declared rewrite {:?} -> {:?}: {})",
            rewrite.bench, rewrite.service, rewrite.reason
        );
    }
    let all: Vec<&Candidate> = list.iter().chain(context).flat_map(|r| r.candidates.iter()).collect();
    let best = all
        .iter()
        .max_by_key(|c| {
            let common = lcs(&c.tokens, bench).len() as i64;
            2 * common - c.tokens.len() as i64 - bench.len() as i64
        })
        .copied();
    match best {
        None => {
            let names: Vec<String> = list.iter().chain(context).map(|r| r.location.clone()).collect();
            let _ = write!(out, "\n  none of {} issues any SQL", names.join(", "));
        }
        Some(best) => {
            let _ = write!(
                out,
                "\n  closest service statement, {}:\n    {}",
                best.origin,
                render(&best.tokens)
            );
            let (only_bench, only_service) = diff(&best.tokens, bench);
            let _ = write!(
                out,
                "\n  only in the script: {}\n  only in the service: {}",
                if only_bench.is_empty() {
                    "-".to_owned()
                } else {
                    only_bench.join(" ")
                },
                if only_service.is_empty() {
                    "-".to_owned()
                } else {
                    only_service.join(" ")
                },
            );
            let others: Vec<String> = list
                .iter()
                .flat_map(|r| r.candidates.iter())
                .filter(|c| !std::ptr::eq(*c, best))
                .map(|c| format!("\n    {}: {}", c.origin, render(&c.tokens)))
                .collect();
            if !others.is_empty() {
                let _ = write!(out, "\n  the named functions' other SQL:{}", others.concat());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// The scripts: annotations and statements
// ---------------------------------------------------------------------------------

struct Annotation {
    line: usize,
    text: String,
    service: String,
    context: Vec<String>,
    list: Vec<String>,
}

struct Statement {
    line: usize,
    text: String,
    annotation: Option<usize>,
}

struct Script {
    annotations: Vec<Annotation>,
    statements: Vec<Statement>,
}

/// The script's annotations and statements, and the annotations it cannot read.
fn parse_script(text: &str) -> (Script, Vec<(usize, String)>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut script = Script {
        annotations: Vec::new(),
        statements: Vec::new(),
    };
    let mut errors = Vec::new();
    let mut current: Option<usize> = None;
    let mut last_service: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() {
            current = None;
            i += 1;
            continue;
        }
        if let Some(comment) = line.strip_prefix("--") {
            let start = i;
            let mut body = comment.trim().to_owned();
            let mut parsed = parse_annotation(&body);
            while parsed.is_some() && body.ends_with(',') {
                let Some(next) = lines.get(i + 1).and_then(|l| l.trim().strip_prefix("--")) else {
                    break;
                };
                i += 1;
                body.push(' ');
                body.push_str(next.trim());
                parsed = parse_annotation(&body);
            }
            match parsed {
                None => {} // prose
                Some(Err(e)) => {
                    errors.push((start + 1, format!("{e}: -- {body}")));
                    current = None;
                }
                Some(Ok((service, context, list))) => match service.or_else(|| last_service.clone()) {
                    None => {
                        errors.push((
                            start + 1,
                            format!("the annotation names no service, and none comes before it: -- {body}"),
                        ));
                        current = None;
                    }
                    Some(service) => {
                        last_service = Some(service.clone());
                        current = Some(script.annotations.len());
                        script.annotations.push(Annotation {
                            line: start + 1,
                            text: body,
                            service,
                            context,
                            list,
                        });
                    }
                },
            }
            i += 1;
            continue;
        }
        let start = i;
        let mut stmt = String::new();
        loop {
            stmt.push_str(lines[i]);
            stmt.push('\n');
            i += 1;
            if statement_complete(&stmt) || i >= lines.len() {
                break;
            }
        }
        script.statements.push(Statement {
            line: start + 1,
            text: stmt,
            annotation: current,
        });
    }
    (script, errors)
}

type ParsedAnnotation = (Option<String>, Vec<String>, Vec<String>);

/// `None` for prose; otherwise the service (if named), the context's and the list's
/// function paths.
fn parse_annotation(comment: &str) -> Option<Result<ParsedAnnotation, String>> {
    let comment = comment.trim();
    let (service, body) = match comment.split_once("  ") {
        Some((word, rest)) if ROOTS.iter().any(|(s, _)| *s == word) => (Some(word.to_owned()), rest.trim()),
        _ => (None, comment),
    };
    let body_paths = paths(&without_parentheses(body));
    let starts_with_path = body_paths.first().is_some_and(|p| body.starts_with(p.as_str()));
    if service.is_none() && !starts_with_path && !body.contains('·') {
        return None;
    }
    let (context, list) = match body.rsplit_once('·') {
        Some((context, list)) => (context, list),
        None => ("", body),
    };
    let context = paths(&without_parentheses(context));
    let list = paths(&without_parentheses(list));
    if list.is_empty() {
        return Some(Err(
            "an annotation that names no function (`module::function` or `Type::method`, outside parentheses)"
                .to_owned(),
        ));
    }
    Some(Ok((service, context, list)))
}

fn without_parentheses(s: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `a::b(::c)*` paths in prose.
fn paths(s: &str) -> Vec<String> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let boundary = i == 0 || !(is_ident_char(c[i - 1]) || c[i - 1] == ':' || c[i - 1] == '/');
        if !(boundary && is_ident_start(c[i])) {
            i += 1;
            continue;
        }
        let start = i;
        let mut segments = 0;
        loop {
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            segments += 1;
            if i + 2 < c.len() && c[i] == ':' && c[i + 1] == ':' && is_ident_start(c[i + 2]) {
                i += 2;
            } else {
                break;
            }
        }
        if segments >= 2 {
            out.push(c[start..i].iter().collect());
        }
    }
    out
}

/// Whether the lines read so far end a statement: `;` outside a string, or a pgbench
/// `\gset`.
fn statement_complete(text: &str) -> bool {
    let t = text.trim_end();
    if t.ends_with("\\gset") {
        return true;
    }
    if !t.ends_with(';') {
        return false;
    }
    let c: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '-' if c.get(i + 1) == Some(&'-') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '\'' => {
                let escapes = i > 0 && matches!(c[i - 1], 'E' | 'e') && (i < 2 || !is_ident_char(c[i - 2]));
                i += 1;
                loop {
                    match c.get(i) {
                        None => return false,
                        Some('\\') if escapes => i += 2,
                        Some('\'') if c.get(i + 1) == Some(&'\'') => i += 2,
                        Some('\'') => break,
                        Some(_) => i += 1,
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    true
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The scripts' own transaction control and pgbench set-up.
fn is_scaffolding(flat: &str) -> bool {
    let upper = flat.trim_end_matches(';').to_ascii_uppercase();
    flat.ends_with("\\gset")
        || ["BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION"].contains(&upper.as_str())
        || upper.starts_with("PREPARE TRANSACTION ")
        || upper.starts_with("COMMIT PREPARED ")
        || upper.starts_with("ROLLBACK PREPARED ")
}

// ---------------------------------------------------------------------------------
// SQL tokens and the comparison
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum SqlTok {
    /// A keyword or an unquoted identifier, lower-cased.
    Word(String),
    Quoted(String),
    /// A string literal, with its prefix (`E'...'`) and quotes.
    Str(String),
    Num(String),
    /// A service bind (`$1`) or a value spliced in with `format!`.
    Bind,
    /// A service bind with a cast: `$2::text[]`.
    BindCast(String),
    /// A pgbench variable: `:order_id`.
    Var(String),
    /// A script placeholder replaced before the run: `@BODY_ORDER@`.
    Sub(String),
    Op(String),
}

fn sql_tokens(s: &str) -> Result<Vec<SqlTok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '-' && c.get(i + 1) == Some(&'-') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let end = (i + 2..c.len().saturating_sub(1))
                .find(|&k| c[k] == '*' && c[k + 1] == '/')
                .ok_or("an unterminated /* comment")?;
            i = end + 2;
        } else if ch == '\'' || (matches!(ch, 'E' | 'e') && c.get(i + 1) == Some(&'\'')) {
            let escapes = ch != '\'';
            let start = i;
            i += if escapes { 2 } else { 1 };
            loop {
                match c.get(i) {
                    None => return Err("an unterminated string literal".to_owned()),
                    Some('\\') if escapes => i += 2,
                    Some('\'') if c.get(i + 1) == Some(&'\'') => i += 2,
                    Some('\'') => break,
                    Some(_) => i += 1,
                }
            }
            i += 1;
            let mut lit: String = c[start..i].iter().collect();
            if escapes {
                lit.replace_range(0..1, "E");
            }
            out.push(SqlTok::Str(lit));
        } else if ch == '"' {
            let end = (i + 1..c.len())
                .find(|&k| c[k] == '"')
                .ok_or("an unterminated quoted identifier")?;
            out.push(SqlTok::Quoted(c[i + 1..end].iter().collect()));
            i = end + 1;
        } else if ch.is_ascii_digit() {
            let start = i;
            while i < c.len() && c[i].is_ascii_digit() {
                i += 1;
            }
            if c.get(i) == Some(&'.') && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while i < c.len() && c[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push(SqlTok::Num(c[start..i].iter().collect()));
        } else if ch == '$' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
            i += 1;
            while i < c.len() && c[i].is_ascii_digit() {
                i += 1;
            }
            out.push(SqlTok::Bind);
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(SqlTok::Op("::".to_owned()));
            i += 2;
        } else if ch == ':' && c.get(i + 1).is_some_and(|&d| is_ident_start(d)) {
            let start = i + 1;
            i += 1;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            out.push(SqlTok::Var(c[start..i].iter().collect()));
        } else if ch == '@' && c.get(i + 1).is_some_and(|&d| is_ident_start(d)) {
            let start = i;
            i += 1;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            if c.get(i) != Some(&'@') {
                return Err(format!("a stray @ at {}", c[start..i].iter().collect::<String>()));
            }
            i += 1;
            out.push(SqlTok::Sub(c[start..i].iter().collect()));
        } else if is_ident_start(ch) {
            let start = i;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            out.push(SqlTok::Word(
                c[start..i].iter().collect::<String>().to_ascii_lowercase(),
            ));
        } else {
            let two: String = c[i..(i + 2).min(c.len())].iter().collect();
            if ["||", "<=", ">=", "<>", "!=", "=>", "->"].contains(&two.as_str()) {
                out.push(SqlTok::Op(two));
                i += 2;
            } else {
                out.push(SqlTok::Op(ch.to_string()));
                i += 1;
            }
        }
    }
    if out.last() == Some(&SqlTok::Op(";".to_owned())) {
        out.pop();
    }
    Ok(out)
}

fn bench_tokens(s: &str) -> Result<Vec<SqlTok>, String> {
    sql_tokens(s)
}

/// A service statement's tokens: a bind and its cast become one token.
fn service_tokens(s: &str) -> Result<Vec<SqlTok>, String> {
    let toks = sql_tokens(s)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i] == SqlTok::Bind
            && toks.get(i + 1) == Some(&SqlTok::Op("::".to_owned()))
            && let Some((ty, end)) = type_name(&toks, i + 2)
        {
            out.push(SqlTok::BindCast(ty));
            i = end;
            continue;
        }
        out.push(toks[i].clone());
        i += 1;
    }
    Ok(out)
}

/// A type name at `i` (`text`, `int[]`), and where it ends.
fn type_name(t: &[SqlTok], mut i: usize) -> Option<(String, usize)> {
    let SqlTok::Word(name) = t.get(i)? else { return None };
    let mut ty = name.clone();
    i += 1;
    while t.get(i) == Some(&SqlTok::Op("[".to_owned())) && t.get(i + 1) == Some(&SqlTok::Op("]".to_owned())) {
        ty.push_str("[]");
        i += 2;
    }
    Some((ty, i))
}

fn is_op(t: Option<&SqlTok>, op: &str) -> bool {
    matches!(t, Some(SqlTok::Op(o)) if o == op)
}

/// The ends of the value expressions starting at `j` in a script's statement, each
/// with the cast it ends in (when it is a single operand).
fn value_ends(b: &[SqlTok], j: usize) -> Vec<(usize, Option<String>)> {
    let mut ends = Vec::new();
    let Some((mut end, cast)) = operand(b, j) else {
        return ends;
    };
    ends.push((end, cast));
    while let Some(SqlTok::Op(op)) = b.get(end) {
        if !["||", "+", "-", "*", "/"].contains(&op.as_str()) {
            break;
        }
        let Some((next, _)) = operand(b, end + 1) else { break };
        end = next;
        ends.push((end, None));
    }
    ends
}

/// One operand: a literal, a variable, a placeholder, `NULL`/`TRUE`/`FALSE`,
/// `ARRAY[...]`, `f(...)` over values or `(value)`, then any casts.
fn operand(b: &[SqlTok], j: usize) -> Option<(usize, Option<String>)> {
    let mut end = match b.get(j)? {
        SqlTok::Str(_) | SqlTok::Num(_) | SqlTok::Var(_) | SqlTok::Sub(_) => j + 1,
        SqlTok::Op(o) if o == "-" && matches!(b.get(j + 1), Some(SqlTok::Num(_))) => j + 2,
        SqlTok::Op(o) if o == "(" => {
            let (inner, _) = value_ends(b, j + 1).into_iter().last()?;
            if !is_op(b.get(inner), ")") {
                return None;
            }
            inner + 1
        }
        SqlTok::Word(w) if ["null", "true", "false"].contains(&w.as_str()) => j + 1,
        SqlTok::Word(w) if w == "array" && is_op(b.get(j + 1), "[") => list(b, j + 2, "]")?,
        SqlTok::Word(w) if !is_structural(w) && is_op(b.get(j + 1), "(") => list(b, j + 2, ")")?,
        _ => return None,
    };
    let mut cast = None;
    while is_op(b.get(end), "::") {
        let (ty, after) = type_name(b, end + 1)?;
        cast = Some(ty);
        end = after;
    }
    Some((end, cast))
}

/// Values separated by commas (a named argument `name => value` too), up to `close`.
fn list(b: &[SqlTok], mut j: usize, close: &str) -> Option<usize> {
    if is_op(b.get(j), close) {
        return Some(j + 1);
    }
    loop {
        if matches!(b.get(j), Some(SqlTok::Word(_))) && is_op(b.get(j + 1), "=>") {
            j += 2;
        }
        let (end, _) = value_ends(b, j).into_iter().last()?;
        if is_op(b.get(end), ",") {
            j = end + 1;
        } else if is_op(b.get(end), close) {
            return Some(end + 1);
        } else {
            return None;
        }
    }
}

/// Words that never start a value (so a bind never swallows a clause).
fn is_structural(w: &str) -> bool {
    [
        "select",
        "from",
        "where",
        "and",
        "or",
        "not",
        "in",
        "is",
        "exists",
        "set",
        "values",
        "returning",
        "on",
        "conflict",
        "do",
        "update",
        "insert",
        "delete",
        "into",
        "order",
        "by",
        "group",
        "limit",
        "for",
        "as",
        "with",
        "case",
        "when",
        "then",
        "else",
        "end",
        "any",
        "all",
    ]
    .contains(&w)
}

/// Whether a script's statement matches a service statement: equal token for token,
/// a bind taking one value expression (of the same cast, when both sides cast it).
fn matches(service: &[SqlTok], bench: &[SqlTok]) -> bool {
    fn go(s: &[SqlTok], b: &[SqlTok], i: usize, j: usize, memo: &mut HashMap<(usize, usize), bool>) -> bool {
        if let Some(&known) = memo.get(&(i, j)) {
            return known;
        }
        let result = if i == s.len() {
            j == b.len()
        } else {
            match &s[i] {
                SqlTok::Bind => value_ends(b, j).into_iter().any(|(e, _)| go(s, b, i + 1, e, memo)),
                SqlTok::BindCast(ty) => value_ends(b, j)
                    .into_iter()
                    .any(|(e, cast)| cast.as_ref().is_none_or(|c| c == ty) && go(s, b, i + 1, e, memo)),
                tok => b.get(j) == Some(tok) && go(s, b, i + 1, j + 1, memo),
            }
        };
        memo.insert((i, j), result);
        result
    }
    go(service, bench, 0, 0, &mut HashMap::new())
}

fn find_subsequence(haystack: &[SqlTok], needle: &[SqlTok]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn show(t: &SqlTok) -> String {
    match t {
        SqlTok::Word(w) => w.clone(),
        SqlTok::Quoted(q) => format!("\"{q}\""),
        SqlTok::Str(s) | SqlTok::Num(s) | SqlTok::Sub(s) | SqlTok::Op(s) => s.clone(),
        SqlTok::Bind | SqlTok::Var(_) => "?".to_owned(),
        SqlTok::BindCast(ty) => format!("?::{ty}"),
    }
}

/// The normalised statement: binds and variables as `?`, single spaces.
fn render(toks: &[SqlTok]) -> String {
    let mut out = String::new();
    let mut prev: Option<&SqlTok> = None;
    for t in toks {
        let s = show(t);
        let glue = matches!(t, SqlTok::Op(o) if [",", ")", "]", "::"].contains(&o.as_str()))
            || matches!(prev, Some(SqlTok::Op(o)) if ["(", "[", "::"].contains(&o.as_str()))
            || (is_op(Some(t), "(") && matches!(prev, Some(SqlTok::Word(w)) if !is_structural(w)))
            || (is_op(Some(t), "[") && matches!(prev, Some(SqlTok::Word(_))));
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        out.push_str(&s);
        prev = Some(t);
    }
    out
}

/// The longest common subsequence, a bind and a variable counting as equal.
fn lcs(a: &[SqlTok], b: &[SqlTok]) -> Vec<(usize, usize)> {
    let eq = |x: &SqlTok, y: &SqlTok| show(x) == show(y);
    let (n, m) = (a.len(), b.len());
    let mut dp = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            dp[i][j] = if eq(&a[i], &b[j]) {
                dp[i + 1][j + 1] + 1
            } else {
                dp[i + 1][j].max(dp[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut pairs) = (0, 0, Vec::new());
    while i < n && j < m {
        if eq(&a[i], &b[j]) {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if dp[i + 1][j] >= dp[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// Tokens only in the script's statement, and only in the service's (placeholders
/// aside: a bind stands for a value the script spells out).
fn diff(service: &[SqlTok], bench: &[SqlTok]) -> (Vec<String>, Vec<String>) {
    let pairs = lcs(service, bench);
    let in_s: HashSet<usize> = pairs.iter().map(|p| p.0).collect();
    let in_b: HashSet<usize> = pairs.iter().map(|p| p.1).collect();
    let only_b = (0..bench.len())
        .filter(|j| !in_b.contains(j) && !matches!(bench[*j], SqlTok::Var(_)))
        .map(|j| show(&bench[j]))
        .collect();
    let only_s = (0..service.len())
        .filter(|i| !in_s.contains(i) && !matches!(service[*i], SqlTok::Bind | SqlTok::BindCast(_)))
        .map(|i| show(&service[i]))
        .collect();
    (only_b, only_s)
}

// ---------------------------------------------------------------------------------
// The services' code: functions and their SQL
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum RTok {
    Ident(String),
    Str(String),
    Punct(String),
    /// Numbers, characters, lifetimes.
    Other,
}

struct RToken {
    tok: RTok,
    line: usize,
}

fn rust_tokens(src: &str) -> Vec<RToken> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let count_lines = |from: usize, to: usize, line: &mut usize| {
        *line += c[from..to].iter().filter(|&&ch| ch == '\n').count();
    };
    while i < c.len() {
        let ch = c[i];
        let start = i;
        let start_line = line;
        if ch == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if ch.is_whitespace() {
            i += 1;
            continue;
        }
        if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            count_lines(start, i, &mut line);
            continue;
        }
        // Raw strings: r"..", r#".."#, br"..", cr"..".
        let prefix = if matches!(ch, 'b' | 'c') && c.get(i + 1) == Some(&'r') {
            2
        } else if ch == 'r' {
            1
        } else {
            0
        };
        if prefix > 0 {
            let mut k = i + prefix;
            let mut hashes = 0;
            while c.get(k) == Some(&'#') {
                hashes += 1;
                k += 1;
            }
            if c.get(k) == Some(&'"') {
                let body = k + 1;
                let mut e = body;
                let close = loop {
                    if e >= c.len() {
                        break c.len();
                    }
                    if c[e] == '"' && (0..hashes).all(|h| c.get(e + 1 + h) == Some(&'#')) {
                        break e;
                    }
                    e += 1;
                };
                let text: String = c[body..close].iter().collect();
                i = (close + 1 + hashes).min(c.len());
                count_lines(start, i, &mut line);
                out.push(RToken {
                    tok: RTok::Str(text),
                    line: start_line,
                });
                continue;
            }
        }
        // Strings with escapes: "..", b"..", c"..".
        if ch == '"' || (matches!(ch, 'b' | 'c') && c.get(i + 1) == Some(&'"')) {
            i += if ch == '"' { 1 } else { 2 };
            let mut text = String::new();
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                    match c.get(i) {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some('r') => text.push('\r'),
                        Some('0') => text.push('\0'),
                        Some('x') => {
                            let hex: String = c[i + 1..(i + 3).min(c.len())].iter().collect();
                            text.push(u8::from_str_radix(&hex, 16).map(char::from).unwrap_or('?'));
                            i += 2;
                        }
                        Some('u') => {
                            let close = (i..c.len()).find(|&k| c[k] == '}').unwrap_or(i);
                            let hex: String = c[(i + 2).min(close)..close].iter().collect();
                            text.push(
                                u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .unwrap_or('?'),
                            );
                            i = close;
                        }
                        Some('\n') => {
                            while c.get(i + 1).is_some_and(|w| w.is_whitespace()) {
                                i += 1;
                            }
                        }
                        Some(&other) => text.push(other),
                        None => {}
                    }
                    i += 1;
                } else {
                    text.push(c[i]);
                    i += 1;
                }
            }
            i += 1;
            count_lines(start, i.min(c.len()), &mut line);
            out.push(RToken {
                tok: RTok::Str(text),
                line: start_line,
            });
            continue;
        }
        // Characters ('a', '\n', b'x') and lifetimes ('a).
        if ch == '\'' || (ch == 'b' && c.get(i + 1) == Some(&'\'')) {
            let q = if ch == '\'' { i } else { i + 1 };
            if c.get(q + 1) == Some(&'\\') {
                let close = (q + 3..c.len()).find(|&k| c[k] == '\'').unwrap_or(c.len() - 1);
                i = close + 1;
            } else if c.get(q + 2) == Some(&'\'') {
                i = q + 3;
            } else {
                i = q + 1;
                while i < c.len() && is_ident_char(c[i]) {
                    i += 1;
                }
            }
            out.push(RToken {
                tok: RTok::Other,
                line: start_line,
            });
            continue;
        }
        if ch.is_ascii_digit() {
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            if c.get(i) == Some(&'.') && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while i < c.len() && is_ident_char(c[i]) {
                    i += 1;
                }
            }
            out.push(RToken {
                tok: RTok::Other,
                line: start_line,
            });
            continue;
        }
        if is_ident_start(ch) || !ch.is_ascii() {
            if ch == 'r' && c.get(i + 1) == Some(&'#') {
                i += 2;
            }
            let from = i;
            while i < c.len() && (is_ident_char(c[i]) || !c[i].is_ascii()) {
                i += 1;
            }
            out.push(RToken {
                tok: RTok::Ident(c[from..i].iter().collect()),
                line: start_line,
            });
            continue;
        }
        let two: String = c[i..(i + 2).min(c.len())].iter().collect();
        let punct = if ["::", "->", "=>", ".."].contains(&two.as_str()) {
            two
        } else {
            ch.to_string()
        };
        i += punct.len();
        out.push(RToken {
            tok: RTok::Punct(punct),
            line: start_line,
        });
    }
    out
}

fn is_punct(t: Option<&RToken>, p: &str) -> bool {
    matches!(t.map(|t| &t.tok), Some(RTok::Punct(x)) if x == p)
}

fn ident(t: Option<&RToken>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(RTok::Ident(s)) => Some(s),
        _ => None,
    }
}

struct FnDef {
    name: String,
    line: usize,
    /// The `impl` block's type, and whether the block is inherent (no trait).
    impl_type: Option<(String, bool)>,
    /// Token indices of the body, braces excluded.
    body: std::ops::Range<usize>,
}

struct SourceFile {
    /// The crate's `src` folder, relative to the workspace root.
    crate_root: String,
    toks: Vec<RToken>,
    fns: Vec<FnDef>,
}

fn closing_brace(toks: &[RToken], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match &t.tok {
            RTok::Punct(p) if p == "{" => depth += 1,
            RTok::Punct(p) if p == "}" => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

fn parse_source(crate_root: String, src: &str) -> SourceFile {
    let toks = rust_tokens(src);
    // `impl` blocks: (start, end, type, inherent).
    let mut impls = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.tok != RTok::Ident("impl".to_owned()) {
            continue;
        }
        let item_position = i == 0
            || matches!(&toks[i - 1].tok, RTok::Punct(p) if ["}", ";", "]", "{"].contains(&p.as_str()))
            || ident(toks.get(i - 1)) == Some("unsafe");
        if !item_position {
            continue;
        }
        let Some(open) = (i..toks.len()).find(|&k| is_punct(toks.get(k), "{")) else {
            continue;
        };
        // The type: after `for` if a trait is implemented, else the first name after
        // the generics.
        let header = &toks[i + 1..open];
        let mut depth = 0i32;
        let mut for_at = None;
        let mut first_type = None;
        for (k, h) in header.iter().enumerate() {
            match &h.tok {
                RTok::Punct(p) if p == "<" => depth += 1,
                RTok::Punct(p) if p == ">" => depth -= 1,
                RTok::Ident(w) if depth == 0 && w == "for" => for_at = Some(k),
                RTok::Ident(w) if depth == 0 && first_type.is_none() => first_type = Some(w.clone()),
                _ => {}
            }
        }
        let ty = match for_at {
            Some(k) => header[k + 1..].iter().find_map(|h| match &h.tok {
                RTok::Ident(w) => Some(w.clone()),
                _ => None,
            }),
            None => first_type,
        };
        if let Some(ty) = ty {
            impls.push((i, closing_brace(&toks, open), ty, for_at.is_none()));
        }
    }
    let mut fns = Vec::new();
    for i in 0..toks.len() {
        if toks[i].tok != RTok::Ident("fn".to_owned()) {
            continue;
        }
        let Some(name) = ident(toks.get(i + 1)) else { continue };
        // The body: the first `{` before any `;` outside parentheses.
        let mut depth = 0i32;
        let mut open = None;
        for (k, t) in toks.iter().enumerate().skip(i + 2) {
            match &t.tok {
                RTok::Punct(p) if p == "(" || p == "[" => depth += 1,
                RTok::Punct(p) if p == ")" || p == "]" => depth -= 1,
                RTok::Punct(p) if p == ";" && depth == 0 => break,
                RTok::Punct(p) if p == "{" && depth == 0 => {
                    open = Some(k);
                    break;
                }
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let close = closing_brace(&toks, open);
        let impl_type = impls
            .iter()
            .filter(|(s, e, _, _)| *s < i && i < *e)
            .max_by_key(|(s, _, _, _)| *s)
            .map(|(_, _, ty, inherent)| (ty.clone(), *inherent));
        fns.push(FnDef {
            name: name.to_owned(),
            line: toks[i].line,
            impl_type,
            body: open + 1..close,
        });
    }
    SourceFile { crate_root, toks, fns }
}

/// One SQL statement a function issues (one variant of it, when it is put together
/// from parts).
struct Candidate {
    /// Where: `services/order/src/db.rs:98 fetch_order`, with the call chain.
    origin: String,
    tokens: Vec<SqlTok>,
}

/// A function an annotation names, with every statement it (or what it calls) issues.
struct Resolved {
    location: String,
    candidates: Vec<Candidate>,
}

/// The words a statement the services send starts with.
const SQL_START: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "SET", "BEGIN", "COMMIT", "ROLLBACK", "PREPARE",
];

fn is_sql(s: &str) -> bool {
    s.split_whitespace().next().is_some_and(|w| SQL_START.contains(&w))
}

struct Code {
    root: PathBuf,
    /// Every `.rs` file under each crate root, parsed on first use.
    files: HashMap<String, Vec<String>>,
    parsed: HashMap<String, SourceFile>,
    consts: HashMap<String, HashMap<String, String>>,
}

impl Code {
    fn new(root: &Path) -> Code {
        Code {
            root: root.to_path_buf(),
            files: HashMap::new(),
            parsed: HashMap::new(),
            consts: HashMap::new(),
        }
    }

    fn crate_files(&mut self, crate_root: &str) -> Vec<String> {
        if let Some(files) = self.files.get(crate_root) {
            return files.clone();
        }
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.root.join(crate_root), &mut found);
        let mut files: Vec<String> = found
            .iter()
            .filter_map(|p| p.strip_prefix(&self.root).ok())
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .collect();
        files.sort();
        self.files.insert(crate_root.to_owned(), files.clone());
        files
    }

    fn file(&mut self, shown: &str) -> &SourceFile {
        if !self.parsed.contains_key(shown) {
            let src = fs::read_to_string(self.root.join(shown)).unwrap_or_default();
            let crate_root = ROOTS
                .iter()
                .map(|(_, r)| *r)
                .find(|r| shown.starts_with(&format!("{r}/")))
                .unwrap_or("")
                .to_owned();
            self.parsed.insert(shown.to_owned(), parse_source(crate_root, &src));
        }
        &self.parsed[shown]
    }

    /// The functions `path` names in `crate_root`: `(file, fn index)`.
    fn lookup(&mut self, crate_root: &str, path: &[String]) -> Result<Vec<(String, usize)>, String> {
        let (name, modules) = path.split_last().ok_or("an empty path")?;
        let (ty, modules) = match modules.split_last() {
            Some((last, rest)) if last.starts_with(|c: char| c.is_ascii_uppercase()) => (Some(last.clone()), rest),
            _ => (None, modules),
        };
        let files: Vec<String> = self
            .crate_files(crate_root)
            .into_iter()
            .filter(|f| {
                let rel = f.strip_prefix(&format!("{crate_root}/")).unwrap_or(f);
                let rel = rel.strip_suffix(".rs").unwrap_or(rel);
                let rel = rel.strip_suffix("/mod").unwrap_or(rel);
                let parts: Vec<&str> = rel.split('/').collect();
                modules.is_empty() || parts.ends_with(&modules.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect();
        if files.is_empty() {
            return Err(format!("no module file for `{}` in {crate_root}", modules.join("::")));
        }
        let mut hits = Vec::new();
        for f in &files {
            let parsed = self.file(f);
            for (k, d) in parsed.fns.iter().enumerate() {
                let ok = d.name == *name
                    && match &ty {
                        Some(ty) => d.impl_type.as_ref().is_some_and(|(t, _)| t == ty),
                        None => d.impl_type.is_none(),
                    };
                if ok {
                    hits.push((f.clone(), k));
                }
            }
        }
        if ty.is_some() && hits.len() > 1 {
            // A type's own method before a trait's.
            let inherent: Vec<_> = hits
                .iter()
                .filter(|(f, k)| self.parsed[f].fns[*k].impl_type.as_ref().is_some_and(|(_, i)| *i))
                .cloned()
                .collect();
            if !inherent.is_empty() {
                hits = inherent;
            }
        }
        match hits.len() {
            0 => Err(format!("no `fn {name}` in {}", files.join(", "))),
            1 => Ok(hits),
            _ => Err(format!(
                "`{}` is ambiguous: {}",
                path.join("::"),
                hits.iter()
                    .map(|(f, k)| format!("{f}:{}", self.parsed[f].fns[*k].line))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The crate's one free function called `name`, if exactly one.
    fn crate_fn(&mut self, crate_root: &str, name: &str) -> Vec<(String, usize)> {
        let mut hits = Vec::new();
        for f in self.crate_files(crate_root) {
            for (k, d) in self.file(&f).fns.iter().enumerate() {
                if d.name == name && d.impl_type.is_none() {
                    hits.push((f.clone(), k));
                }
            }
        }
        if hits.len() == 1 { hits } else { Vec::new() }
    }

    /// The crate's string constants (`const NAME: &str = "..";`), by name; a name
    /// defined twice is left out.
    fn crate_consts(&mut self, crate_root: &str) -> HashMap<String, String> {
        if let Some(known) = self.consts.get(crate_root) {
            return known.clone();
        }
        let mut consts: HashMap<String, Option<String>> = HashMap::new();
        for f in self.crate_files(crate_root) {
            let t = &self.file(&f).toks;
            for i in 0..t.len() {
                if let Some(name) = string_const(t, i) {
                    let value = const_value(t, i);
                    consts.entry(name.to_owned()).and_modify(|v| *v = None).or_insert(value);
                }
            }
        }
        let consts: HashMap<String, String> = consts.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
        self.consts.insert(crate_root.to_owned(), consts.clone());
        consts
    }

    /// An annotation's function: in the service's crate, then in the shared crate.
    fn resolve_annotated(&mut self, service: &str, name: &str) -> Result<Resolved, String> {
        let mut path: Vec<String> = name.split("::").map(str::to_owned).collect();
        let service_root = ROOTS
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, r)| *r)
            .ok_or("unknown service")?;
        let mut roots = vec![service_root];
        if let Some((_, root)) = SHARED_CRATES.iter().find(|(c, _)| *c == path[0]) {
            path.remove(0);
            roots = vec![root];
        } else if path[0] == "crate" {
            path.remove(0);
        } else {
            roots.extend(SHARED_CRATES.iter().map(|(_, r)| *r).filter(|r| *r != service_root));
        }
        let mut errors = Vec::new();
        for root in roots {
            match self.lookup(root, &path) {
                Ok(hits) => {
                    let (file, k) = hits[0].clone();
                    let location = format!(
                        "{file}:{} {}",
                        self.parsed[&file].fns[k].line, self.parsed[&file].fns[k].name
                    );
                    let mut candidates = Vec::new();
                    self.collect(&file, k, &location, &mut HashSet::new(), 0, &mut candidates)?;
                    return Ok(Resolved { location, candidates });
                }
                Err(e) => errors.push(e),
            }
        }
        Err(errors.join("; "))
    }

    /// The SQL a function issues, its callees' included (same crate), in order.
    fn collect(
        &mut self,
        file: &str,
        k: usize,
        origin: &str,
        seen: &mut HashSet<(String, usize)>,
        depth: usize,
        out: &mut Vec<Candidate>,
    ) -> Result<(), String> {
        if depth > 8 || !seen.insert((file.to_owned(), k)) {
            return Ok(());
        }
        let crate_root = self.file(file).crate_root.clone();
        let consts = self.crate_consts(&crate_root);
        let (sqls, calls) = sql_and_calls(self.file(file), k, &consts);
        for (line, sql) in sqls {
            let tokens = service_tokens(&sql).map_err(|e| format!("{file}:{line}: unreadable SQL {sql:?}: {e}"))?;
            out.push(Candidate {
                origin: format!("{origin} ({file}:{line})"),
                tokens,
            });
        }
        for call in calls {
            // A name imported with `use`, or a module under another name: the crate's
            // one free function of that name.
            let targets: Vec<(String, usize)> = match call {
                Call::Local(name) => {
                    let local: Vec<(String, usize)> = self
                        .file(file)
                        .fns
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| d.name == name)
                        .map(|(j, _)| (file.to_owned(), j))
                        .collect();
                    if local.is_empty() {
                        self.crate_fn(&crate_root, &name)
                    } else {
                        local
                    }
                }
                Call::Path(path) => match self.lookup(&crate_root, &path) {
                    Ok(hits) => hits,
                    Err(_) => self.crate_fn(&crate_root, path.last().map_or("", String::as_str)),
                },
            };
            for (tf, tk) in targets {
                let name = self.parsed[&tf].fns[tk].name.clone();
                self.collect(&tf, tk, &format!("{origin} → {name}"), seen, depth + 1, out)?;
            }
        }
        Ok(())
    }
}

enum Call {
    /// `f(..)`, `self.f(..)`, `Self::f(..)`: a function of the same file.
    Local(String),
    /// `module::f(..)`: a function of the same crate.
    Path(Vec<String>),
}

/// The SQL literals of a function's body (each variant of one put together with
/// `format!`), with their lines, and the calls it makes.
fn sql_and_calls(f: &SourceFile, k: usize, consts: &HashMap<String, String>) -> (Vec<(usize, String)>, Vec<Call>) {
    let t = &f.toks;
    let body = f.fns[k].body.clone();
    let mut sqls = Vec::new();
    let mut calls = Vec::new();
    let mut i = body.start;
    while i < body.end {
        let tok = &t[i].tok;
        // format!("..."), concat!("...", "...")
        if let RTok::Ident(m) = tok
            && (m == "format" || m == "concat")
            && is_punct(t.get(i + 1), "!")
            && is_punct(t.get(i + 2), "(")
        {
            let mut j = i + 3;
            let mut text = String::new();
            while let Some(RToken { tok: RTok::Str(s), .. }) = t.get(j) {
                text.push_str(s);
                j += 1;
                if m == "concat"
                    && is_punct(t.get(j), ",")
                    && matches!(t.get(j + 1).map(|x| &x.tok), Some(RTok::Str(_)))
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if is_sql(&text) {
                let variants = if m == "format" {
                    format_variants(f, k, &text, consts)
                } else {
                    vec![text]
                };
                for v in variants {
                    sqls.push((t[i].line, v));
                }
            }
            i = j.max(i + 1);
            continue;
        }
        match tok {
            RTok::Str(s) if is_sql(s) => sqls.push((t[i].line, s.clone())),
            RTok::Ident(name) => {
                let prev = i.checked_sub(1).and_then(|p| t.get(p));
                let after_path = is_punct(prev, "::");
                let after_dot = is_punct(prev, ".");
                let after_fn = ident(prev) == Some("fn");
                if after_path || after_fn {
                    // Inside a path, or a definition.
                } else if is_punct(t.get(i + 1), "::") {
                    let mut path = vec![name.clone()];
                    let mut j = i + 1;
                    while is_punct(t.get(j), "::") {
                        let Some(seg) = ident(t.get(j + 1)) else { break };
                        path.push(seg.to_owned());
                        j += 2;
                    }
                    if is_punct(t.get(j), "(") {
                        while matches!(path.first().map(String::as_str), Some("crate" | "self" | "super")) {
                            path.remove(0);
                        }
                        if path.len() == 2 && path[0] == "Self" {
                            calls.push(Call::Local(path[1].clone()));
                        } else if path.len() == 1 {
                            calls.push(Call::Local(path[0].clone()));
                        } else if path[..path.len() - 1]
                            .iter()
                            .all(|s| s.starts_with(|c: char| c.is_ascii_lowercase()))
                        {
                            calls.push(Call::Path(path));
                        }
                    }
                    i = j;
                    continue;
                } else if is_punct(t.get(i + 1), "(")
                    && (!after_dot || ident(i.checked_sub(2).and_then(|p| t.get(p))) == Some("self"))
                {
                    calls.push(Call::Local(name.clone()));
                }
            }
            _ => {}
        }
        i += 1;
    }
    (sqls, calls)
}

/// The statements a `format!` string makes: `{CONST}` is the file's constant,
/// `{name}` a local bound to string literals (each one a variant), anything else a
/// value spliced in (a bind, for the comparison).
fn format_variants(f: &SourceFile, k: usize, fmt: &str, consts: &HashMap<String, String>) -> Vec<String> {
    let mut variants = vec![String::new()];
    let c: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '{' if c.get(i + 1) == Some(&'{') => {
                variants.iter_mut().for_each(|v| v.push('{'));
                i += 2;
            }
            '}' if c.get(i + 1) == Some(&'}') => {
                variants.iter_mut().for_each(|v| v.push('}'));
                i += 2;
            }
            '{' => {
                let close = (i..c.len()).find(|&j| c[j] == '}').unwrap_or(c.len());
                let arg: String = c[i + 1..close].iter().collect();
                let name = arg.split(':').next().unwrap_or("").trim().to_owned();
                let values = interpolation(f, k, &name, consts);
                variants = variants
                    .iter()
                    .flat_map(|v| values.iter().map(move |x| format!("{v}{x}")))
                    .collect();
                i = close + 1;
            }
            ch => {
                variants.iter_mut().for_each(|v| v.push(ch));
                i += 1;
            }
        }
    }
    variants
}

fn interpolation(f: &SourceFile, k: usize, name: &str, consts: &HashMap<String, String>) -> Vec<String> {
    let t = &f.toks;
    let value = vec!["$0".to_owned()];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return value;
    }
    // `let name = if .. { "a" } else { "b" };` in the function.
    let body = f.fns[k].body.clone();
    for i in body.clone() {
        if ident(t.get(i)) != Some("let") {
            continue;
        }
        let mut j = i + 1;
        if ident(t.get(j)) == Some("mut") {
            j += 1;
        }
        if ident(t.get(j)) != Some(name) {
            continue;
        }
        let end = (j..body.end).find(|&e| is_punct(t.get(e), ";")).unwrap_or(body.end);
        let init = &t[j + 1..end];
        let literals: Vec<String> = init
            .iter()
            .filter_map(|x| match &x.tok {
                RTok::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        let calls = init.iter().any(|x| x.tok == RTok::Punct("(".to_owned()));
        return if literals.is_empty() || calls { value } else { literals };
    }
    // `const NAME: &str = "..";` in the file, else in the crate.
    for i in 0..t.len() {
        if string_const(t, i) == Some(name)
            && let Some(s) = const_value(t, i)
        {
            return vec![s];
        }
    }
    consts.get(name).map_or(value, |s| vec![s.clone()])
}

/// The name of a `const`/`static` item starting at `i`.
fn string_const(t: &[RToken], i: usize) -> Option<&str> {
    if matches!(ident(t.get(i)), Some("const" | "static")) {
        ident(t.get(i + 1))
    } else {
        None
    }
}

/// The string literal a `const`/`static` item starting at `i` is set to.
fn const_value(t: &[RToken], i: usize) -> Option<String> {
    let eq = (i..t.len()).find(|&e| is_punct(t.get(e), "=") || is_punct(t.get(e), ";"))?;
    match (
        is_punct(t.get(eq), "="),
        t.get(eq + 1).map(|x| &x.tok),
        is_punct(t.get(eq + 2), ";"),
    ) {
        (true, Some(RTok::Str(s)), true) => Some(s.clone()),
        _ => None,
    }
}
