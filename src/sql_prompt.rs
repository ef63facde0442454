//! `weir sql` without `-e` or `-f`: statements as they come, from a prompt
//! with line editing and history (`~/.weir_history`) on a terminal, or from
//! standard input when it is not one. A statement ends with `;` at the end of
//! a line; `\q`, `quit` or `exit` (or end of input) ends the session.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

/// Words that end the session, alone on a line.
const QUIT: &[&str] = &["\\q", "quit", "exit", "quit;", "exit;"];

/// Where a piece of input comes from.
enum Lines {
    Prompt {
        editor: Box<DefaultEditor>,
        history: Option<PathBuf>,
    },
    Piped(std::io::Lines<std::io::StdinLock<'static>>),
}

impl Lines {
    fn open() -> Lines {
        if is_terminal()
            && let Ok(mut editor) = DefaultEditor::new()
        {
            let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".weir_history"));
            if let Some(path) = &history {
                // a first session has no history yet
                let _ = editor.load_history(path);
            }
            eprintln!("weir sql: statements end with ';', \\q quits");
            return Lines::Prompt {
                editor: Box::new(editor),
                history,
            };
        }
        Lines::Piped(std::io::stdin().lock().lines())
    }

    /// The next line, or `None` at the end of input.
    fn next(&mut self, continued: bool) -> Option<String> {
        match self {
            Lines::Prompt { editor, .. } => {
                let prompt = if continued { "  ...> " } else { "weir> " };
                loop {
                    match editor.readline(prompt) {
                        Ok(line) => return Some(line),
                        // ctrl-c abandons the line, as in psql
                        Err(ReadlineError::Interrupted) => continue,
                        Err(_) => return None,
                    }
                }
            }
            Lines::Piped(lines) => lines.next().and_then(Result::ok),
        }
    }

    fn remember(&mut self, statement: &str) {
        if let Lines::Prompt { editor, history } = self {
            let _ = editor.add_history_entry(statement);
            if let Some(path) = history
                && let Err(e) = editor.save_history(path)
            {
                eprintln!("weir sql: history not saved to {}: {e}", path.display());
                *history = None;
            }
        }
    }
}

/// Whether statements come from a terminal (a prompt) rather than a pipe.
pub fn is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// A reader of statements for [`weir_sql::run_interactive`]: each call
/// gives the text up to a line that ends with `;`.
pub fn statements() -> impl FnMut() -> Option<String> {
    let mut lines = Lines::open();
    move || {
        let mut text = String::new();
        loop {
            let Some(line) = lines.next(!text.is_empty()) else {
                return (!text.trim().is_empty()).then_some(text);
            };
            if text.trim().is_empty() && QUIT.contains(&line.trim()) {
                return None;
            }
            text.push_str(&line);
            text.push('\n');
            if line.trim_end().ends_with(';') {
                lines.remember(text.trim_end());
                return Some(text);
            }
        }
    }
}
