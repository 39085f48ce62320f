//! Finding the installed ejabberd and its Erlang, as its `ejabberdctl` says.

use std::path::PathBuf;

use std::sync::OnceLock;

/// The one line shown when ejabberd is missing.
pub const INSTALL_HINT: &str =
    "ejabberd is not installed: run `sudo apt-get install -y ejabberd` (Debian/Ubuntu)";

/// Where the installed ejabberd and its Erlang are, as its `ejabberdctl` says.
#[derive(Debug)]
pub(super) struct Install {
    /// The `erl` that `ejabberdctl` runs.
    pub(super) erl: PathBuf,
    /// Where ejabberd's own Erlang applications are, when not in Erlang's library directory.
    pub(super) erl_libs: Option<String>,
}

/// Where to look for `ejabberdctl` besides the `PATH`: a user's `PATH` often lacks `sbin`.
const SBIN: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];

fn which(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A plain `NAME=value` (or `'value'`, `"value"`) line of a shell script, without expansions.
fn shell_var(script: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    script
        .lines()
        .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
        .map(|value| value.trim().trim_matches(['"', '\'']).to_owned())
        .filter(|value| !value.is_empty() && !value.contains('$'))
}

pub(super) fn install() -> Option<&'static Install> {
    static INSTALL: OnceLock<Option<Install>> = OnceLock::new();
    INSTALL
        .get_or_init(|| {
            let ctl = which("ejabberdctl", SBIN)?;
            let script = std::fs::read_to_string(ctl).ok()?;
            let erl = shell_var(&script, "ERL")
                .map(PathBuf::from)
                .filter(|p| p.is_file())
                .or_else(|| which("erl", &[]))?;
            Some(Install {
                erl,
                erl_libs: shell_var(&script, "ERL_LIBS"),
            })
        })
        .as_ref()
}

/// Whether ejabberd (its `ejabberdctl` and the `erl` it runs) is installed.
pub fn installed() -> bool {
    install().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_variables_are_read_without_quotes_and_expansions_skipped() {
        let script = "ERL=\"/usr/bin/erl\"\n    ERL_LIBS='/usr/lib/x86_64-linux-gnu'\nX=$HOME\n";
        assert_eq!(shell_var(script, "ERL").as_deref(), Some("/usr/bin/erl"));
        assert_eq!(
            shell_var(script, "ERL_LIBS").as_deref(),
            Some("/usr/lib/x86_64-linux-gnu")
        );
        assert_eq!(shell_var(script, "X"), None);
        assert_eq!(shell_var(script, "EPMD"), None);
    }
}
