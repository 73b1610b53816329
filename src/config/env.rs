//! `${VAR}` and `${VAR:-default}` interpolation on the YAML text, before parsing, with an
//! injected lookup so tests never read the real environment. `$$` is a literal `$`; comments
//! are left alone. Column shifts are recorded so parse errors still point into the original.

/// An unset variable without a default, or a malformed reference, at a place in the text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EnvProblem {
    pub(crate) message: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// One substitution on a line, in output columns, to map locations back to the original.
#[derive(Clone, Debug, PartialEq)]
struct Shift {
    line: usize,
    out_start: usize,
    out_end: usize,
    orig_start: usize,
    orig_len: usize,
}

/// The interpolated text plus what is needed to map its columns back.
#[derive(Clone, Debug, Default)]
pub(crate) struct Interpolated {
    pub(crate) text: String,
    shifts: Vec<Shift>,
}

impl Interpolated {
    /// Maps a (1-based) column of the interpolated text back to the original text.
    pub(crate) fn original_column(&self, line: usize, column: usize) -> usize {
        let mut delta: isize = 0;
        for s in self.shifts.iter().filter(|s| s.line == line) {
            if column >= s.out_end {
                delta += s.orig_len as isize - (s.out_end - s.out_start) as isize;
            } else if column >= s.out_start {
                return s.orig_start;
            }
        }
        (column as isize + delta).max(1) as usize
    }
}

/// Replaces every `${VAR}` / `${VAR:-default}` outside comments; collects every problem.
pub(crate) fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, Vec<EnvProblem>> {
    let mut out = Interpolated {
        text: String::with_capacity(text.len()),
        shifts: Vec::new(),
    };
    let mut problems = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        interpolate_line(index + 1, line, lookup, &mut out, &mut problems);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn interpolate_line(
    line_no: usize,
    line: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Interpolated,
    problems: &mut Vec<EnvProblem>,
) {
    let chars: Vec<char> = line.chars().collect();
    let (mut i, mut out_col) = (0, 1);
    let (mut in_single, mut in_double) = (false, false);
    while i < chars.len() {
        let c = chars[i];
        let comment_start = c == '#' && (i == 0 || chars[i - 1].is_whitespace());
        if !in_single && !in_double && comment_start {
            out.text.extend(&chars[i..]);
            return;
        }
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single && (i == 0 || chars[i - 1] != '\\') => in_double = !in_double,
            _ => {}
        }
        if c != '$' || i + 1 >= chars.len() || !matches!(chars[i + 1], '$' | '{') {
            out.text.push(c);
            out_col += 1;
            i += 1;
            continue;
        }
        let (replacement, consumed) = if chars[i + 1] == '$' {
            ("$".to_string(), 2)
        } else {
            match reference(&chars[i + 2..], lookup) {
                Ok((value, len)) => (value, len + 2),
                Err(message) => {
                    problems.push(EnvProblem {
                        message,
                        line: line_no,
                        column: i + 1,
                    });
                    let len = chars[i..]
                        .iter()
                        .position(|&c| c == '}')
                        .map_or(2, |p| p + 1);
                    (String::new(), len)
                }
            }
        };
        let width = replacement.chars().count();
        out.shifts.push(Shift {
            line: line_no,
            out_start: out_col,
            out_end: out_col + width,
            orig_start: i + 1,
            orig_len: consumed,
        });
        out.text.push_str(&replacement);
        out_col += width;
        i += consumed;
    }
}

/// Resolves the inside of `${...}` (given the text after `${`): the value and the length
/// consumed including the closing `}`.
fn reference(
    rest: &[char],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, usize), String> {
    let close = rest
        .iter()
        .position(|&c| c == '}')
        .ok_or("unterminated \"${\": missing \"}\"")?;
    let inner: String = rest[..close].iter().collect();
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner.as_str(), None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("invalid variable reference \"${{{inner}}}\""));
    }
    match (lookup(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok((default.to_string(), close + 1)),
        (Some(value), _) => Ok((value, close + 1)),
        (None, Some(default)) => Ok((default.to_string(), close + 1)),
        (None, None) => Err(format!(
            "environment variable {name} is not set and has no default"
        )),
    }
}
