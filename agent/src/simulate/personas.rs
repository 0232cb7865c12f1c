//! The simulated TD Generator's users: personas, their journeys through features, and each
//! feature's latency and error behaviour.

/// A feature of TD Generator with its route and how it performs.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    /// Feature name as sent in events.
    pub name: &'static str,
    /// HTTP route.
    pub route: &'static str,
    /// Median latency, milliseconds (lognormal).
    pub median_ms: f64,
    /// Lognormal shape (sigma of the log).
    pub sigma: f64,
    /// Probability a request fails.
    pub error_rate: f64,
}

/// Every feature the simulated service has.
pub const FEATURES: &[Feature] = &[
    Feature {
        name: "landing",
        route: "/",
        median_ms: 20.0,
        sigma: 0.4,
        error_rate: 0.002,
    },
    Feature {
        name: "pricing",
        route: "/pricing",
        median_ms: 25.0,
        sigma: 0.4,
        error_rate: 0.002,
    },
    Feature {
        name: "login",
        route: "/api/v1/login",
        median_ms: 45.0,
        sigma: 0.5,
        error_rate: 0.005,
    },
    Feature {
        name: "browse_templates",
        route: "/api/v1/templates",
        median_ms: 60.0,
        sigma: 0.5,
        error_rate: 0.004,
    },
    Feature {
        name: "generate",
        route: "/api/v1/generate",
        median_ms: 800.0,
        sigma: 0.6,
        error_rate: 0.02,
    },
    Feature {
        name: "preview",
        route: "/api/v1/preview",
        median_ms: 150.0,
        sigma: 0.5,
        error_rate: 0.008,
    },
    Feature {
        name: "download",
        route: "/api/v1/download",
        median_ms: 90.0,
        sigma: 0.5,
        error_rate: 0.006,
    },
    Feature {
        name: "dashboard",
        route: "/api/v1/dashboard",
        median_ms: 120.0,
        sigma: 0.5,
        error_rate: 0.005,
    },
    Feature {
        name: "query",
        route: "/api/v1/query",
        median_ms: 300.0,
        sigma: 0.8,
        error_rate: 0.015,
    },
    Feature {
        name: "export",
        route: "/api/v1/export",
        median_ms: 1200.0,
        sigma: 0.7,
        error_rate: 0.03,
    },
    Feature {
        name: "api_generate",
        route: "/api/v2/generate",
        median_ms: 500.0,
        sigma: 0.6,
        error_rate: 0.015,
    },
    Feature {
        name: "settings",
        route: "/api/v1/settings",
        median_ms: 50.0,
        sigma: 0.4,
        error_rate: 0.004,
    },
    Feature {
        name: "manage_users",
        route: "/api/v1/users",
        median_ms: 70.0,
        sigma: 0.5,
        error_rate: 0.006,
    },
    Feature {
        name: "audit_log",
        route: "/api/v1/audit",
        median_ms: 200.0,
        sigma: 0.6,
        error_rate: 0.01,
    },
];

/// Looks a feature up by name.
pub fn feature(name: &str) -> &'static Feature {
    FEATURES
        .iter()
        .find(|f| f.name == name)
        .unwrap_or(&FEATURES[0])
}

/// A kind of user: how many there are, how active, and the paths they take.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    /// Persona name, written to the ground truth.
    pub name: &'static str,
    /// Share of all users.
    pub share: f64,
    /// Sessions per user per day relative to the average user.
    pub activity: f64,
    /// Journeys with weights; a session follows one.
    pub journeys: &'static [(f64, &'static [&'static str])],
    /// Probability of leaving after each step (drop-off).
    pub drop_off: f64,
    /// Whether users of this persona are anonymous (ids `anon-…`).
    pub anonymous: bool,
    /// Subscription plan property sent with their events.
    pub plan: &'static str,
}

/// The personas of the simulated service.
pub const PERSONAS: &[Persona] = &[
    Persona {
        name: "creator",
        share: 0.40,
        activity: 1.0,
        journeys: &[
            (
                0.6,
                &[
                    "login",
                    "browse_templates",
                    "generate",
                    "preview",
                    "download",
                ],
            ),
            (
                0.3,
                &["login", "generate", "generate", "preview", "download"],
            ),
            (0.1, &["login", "settings"]),
        ],
        drop_off: 0.08,
        anonymous: false,
        plan: "pro",
    },
    Persona {
        name: "analyst",
        share: 0.20,
        activity: 1.2,
        journeys: &[
            (0.7, &["login", "dashboard", "query", "query", "export"]),
            (0.3, &["login", "dashboard", "query"]),
        ],
        drop_off: 0.05,
        anonymous: false,
        plan: "team",
    },
    Persona {
        name: "api_client",
        share: 0.15,
        activity: 3.0,
        journeys: &[(
            1.0,
            &[
                "api_generate",
                "api_generate",
                "api_generate",
                "api_generate",
            ],
        )],
        drop_off: 0.02,
        anonymous: false,
        plan: "enterprise",
    },
    Persona {
        name: "admin",
        share: 0.05,
        activity: 0.6,
        journeys: &[
            (0.6, &["login", "settings", "manage_users"]),
            (0.4, &["login", "audit_log", "manage_users", "settings"]),
        ],
        drop_off: 0.05,
        anonymous: false,
        plan: "team",
    },
    Persona {
        name: "visitor",
        share: 0.20,
        activity: 0.5,
        journeys: &[
            (0.7, &["landing", "pricing"]),
            (0.3, &["landing", "browse_templates", "pricing"]),
        ],
        drop_off: 0.25,
        anonymous: true,
        plan: "none",
    },
];

/// Diurnal traffic shape by UTC hour: a night trough and an afternoon peak (mean about 1).
pub fn diurnal(hour: f64) -> f64 {
    let phase = (hour - 15.0) / 24.0 * std::f64::consts::TAU;
    1.0 + 0.7 * phase.cos()
}

/// Weekly shape by weekday (0 = Monday): quieter weekends.
pub fn weekly(weekday: u32) -> f64 {
    match weekday {
        5 => 0.6,
        6 => 0.5,
        _ => 1.18,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personas_are_consistent() {
        let share: f64 = PERSONAS.iter().map(|p| p.share).sum();
        assert!((share - 1.0).abs() < 1e-9);
        for p in PERSONAS {
            for (_, j) in p.journeys {
                for f in *j {
                    assert!(FEATURES.iter().any(|x| x.name == *f), "{f} is a feature");
                }
            }
        }
    }

    #[test]
    fn seasonality_averages_about_one() {
        let day: f64 = (0..24).map(|h| diurnal(h as f64)).sum::<f64>() / 24.0;
        let week: f64 = (0..7).map(weekly).sum::<f64>() / 7.0;
        assert!((day - 1.0).abs() < 1e-9);
        assert!((week - 1.0).abs() < 0.01, "{week}");
        assert!(diurnal(15.0) > 1.6 && diurnal(3.0) < 0.4);
    }
}
