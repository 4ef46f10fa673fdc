//! The MITRE ATT&CK® techniques the product reports.
//!
//! © 2026 The MITRE Corporation. This work is reproduced and distributed with the permission
//! of The MITRE Corporation. ATT&CK® is a registered trademark of The MITRE Corporation.
//! Only technique IDs, names and tactics are used (see NOTICE).

use serde::{Deserialize, Serialize};

/// An ATT&CK technique (or sub-technique) and the tactic it serves here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Technique {
    /// Technique ID, e.g. `T1190` or `T1059.004`.
    pub id: &'static str,
    /// Technique name as ATT&CK gives it.
    pub name: &'static str,
    /// The tactic (ATT&CK's name).
    pub tactic: &'static str,
}

macro_rules! techniques {
    ($($ident:ident = $id:literal, $name:literal, $tactic:literal;)*) => {
        $(
            #[doc = concat!($id, " ", $name, " (", $tactic, ").")]
            pub const $ident: Technique = Technique { id: $id, name: $name, tactic: $tactic };
        )*
        /// Every technique the product reports.
        pub const ALL: &[Technique] = &[$($ident),*];
    };
}

techniques! {
    EXPLOIT_PUBLIC_FACING_APPLICATION = "T1190", "Exploit Public-Facing Application", "Initial Access";
    ACTIVE_SCANNING = "T1595", "Active Scanning", "Reconnaissance";
    VULNERABILITY_SCANNING = "T1595.002", "Active Scanning: Vulnerability Scanning", "Reconnaissance";
    BRUTE_FORCE = "T1110", "Brute Force", "Credential Access";
    PASSWORD_GUESSING = "T1110.001", "Brute Force: Password Guessing", "Credential Access";
    PASSWORD_SPRAYING = "T1110.003", "Brute Force: Password Spraying", "Credential Access";
    COMMAND_AND_SCRIPTING_INTERPRETER = "T1059", "Command and Scripting Interpreter", "Execution";
    POWERSHELL = "T1059.001", "Command and Scripting Interpreter: PowerShell", "Execution";
    UNIX_SHELL = "T1059.004", "Command and Scripting Interpreter: Unix Shell", "Execution";
    INGRESS_TOOL_TRANSFER = "T1105", "Ingress Tool Transfer", "Command and Control";
    INHIBIT_SYSTEM_RECOVERY = "T1490", "Inhibit System Recovery", "Impact";
    OS_CREDENTIAL_DUMPING = "T1003", "OS Credential Dumping", "Credential Access";
    LSASS_MEMORY = "T1003.001", "OS Credential Dumping: LSASS Memory", "Credential Access";
    SHADOW_FILE = "T1003.008", "OS Credential Dumping: /etc/passwd and /etc/shadow", "Credential Access";
    FILE_AND_DIRECTORY_DISCOVERY = "T1083", "File and Directory Discovery", "Discovery";
    RESOURCE_HIJACKING = "T1496", "Resource Hijacking", "Impact";
}

/// A technique by its ID.
pub fn technique(id: &str) -> Option<Technique> {
    ALL.iter().copied().find(|t| t.id == id)
}

impl<'de> Deserialize<'de> for Technique {
    /// A technique is read back by its ID (the table is the source of names and tactics).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct ById {
            id: String,
        }
        let ById { id } = ById::deserialize(d)?;
        technique(&id).ok_or_else(|| serde::de::Error::custom(format!("unknown technique {id}")))
    }
}
