//! The identity of the host the sensor runs on.

use std::path::Path;

/// `host.id`, `host.name` of the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// The first non-empty line of a file, trimmed.
fn first_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

impl Host {
    /// Read `/etc/machine-id` (falling back to `/var/lib/dbus/machine-id`) and the kernel's host
    /// name (`/proc/sys/kernel/hostname`, which is the UTS namespace's name, then `/etc/hostname`).
    pub fn detect() -> Host {
        Host::detect_in(Path::new("/"))
    }

    /// [`Host::detect`] with another root (tests).
    pub fn detect_in(root: &Path) -> Host {
        let id = first_line(&root.join("etc/machine-id")).or_else(|| first_line(&root.join("var/lib/dbus/machine-id")));
        let name = first_line(&root.join("proc/sys/kernel/hostname")).or_else(|| first_line(&root.join("etc/hostname")));
        Host { id, name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_machine_id_and_hostname_with_fallbacks() {
        let dir = std::env::temp_dir().join(format!("imdsguard-host-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::create_dir_all(dir.join("var/lib/dbus")).unwrap();
        std::fs::write(dir.join("var/lib/dbus/machine-id"), "abc123\n").unwrap();
        std::fs::write(dir.join("etc/hostname"), "\n").unwrap();
        assert_eq!(Host::detect_in(&dir), Host { id: Some("abc123".into()), name: None });
        std::fs::write(dir.join("etc/machine-id"), "  def456 \nrest").unwrap();
        std::fs::write(dir.join("etc/hostname"), "web-1\n").unwrap();
        assert_eq!(Host::detect_in(&dir), Host { id: Some("def456".into()), name: Some("web-1".into()) });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
