//! Tests of the comparison bench's pure logic: argument parsing and placeholders (`cli.rs`),
//! designs and verdicts (`designs.rs`), /proc parsing (`procfs.rs`) and rate ladders
//! (`curves.rs`). `benches/compare.rs` runs with `harness = false`, so the tests live here,
//! under the test harness (`cargo test --bench compare-units`, and with the rest of
//! `cargo test`).

// What the tests here do not call (the readers of /proc, some accessors) is used by
// benches/compare.rs, which includes the same files.
#![allow(dead_code)]

#[path = "cli.rs"]
mod cli;
#[path = "curves.rs"]
mod curves;
#[path = "designs.rs"]
mod designs;
#[path = "procfs.rs"]
mod procfs;

#[cfg(test)]
mod cli_tests {
    use super::cli::*;
    use super::designs::{Kind, BUILT_IN};

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(o) => Ok(o),
            other => panic!("not a run: {other:?}"),
        }
    }

    fn names(o: &Options) -> Vec<&str> {
        o.designs.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn no_arguments_run_every_scenario_and_built_in_design() {
        let o = run(&["--bench"]).unwrap();
        assert_eq!(o.scenarios, SCENARIOS);
        assert_eq!(names(&o), BUILT_IN);
        assert_eq!((o.quick, o.rounds, o.duration), (false, None, None));
    }

    #[test]
    fn servers_only_scenarios_and_tcp_only_combine() {
        let o = run(&[
            "--quick",
            "--server",
            "python=python3 s.py {tcp}",
            "--server",
            "c=./c --port={tcp} | tee log",
            "--tcp-only",
            "python",
            "--only",
            "python,oneloop",
            "--scenarios",
            "open-loop,concurrency",
            "--scenario",
            "rss",
        ])
        .unwrap();
        assert!(o.quick);
        assert_eq!(o.scenarios, ["concurrency", "open-loop", "rss"]);
        assert_eq!(names(&o), ["oneloop", "python"]);
        assert_eq!(
            o.designs[1].kind,
            Kind::External {
                command: "python3 s.py {tcp}".into(),
                tcp_only: true
            }
        );
        let all = run(&["--server", "c=./c --port={tcp} | tee log"]).unwrap();
        assert_eq!(all.designs.len(), 7);
        let Kind::External { command, tcp_only } = &all.designs[6].kind else {
            panic!("external")
        };
        assert_eq!(
            (command.as_str(), *tcp_only),
            ("./c --port={tcp} | tee log", false)
        );
    }

    #[test]
    fn rounds_and_duration_are_bounded_numbers() {
        let o = run(&["--rounds", "2", "--duration", "0.5"]).unwrap();
        assert_eq!((o.rounds, o.duration), (Some(2), Some(0.5)));
        for bad in [
            &["--rounds", "0"][..],
            &["--rounds", "101"],
            &["--rounds", "two"],
            &["--rounds", "-1"],
            &["--duration", "0.01"],
            &["--duration", "601"],
            &["--duration", "NaN"],
            &["--duration", "inf"],
            &["--rounds"],
        ] {
            assert!(run(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            run(&["--rounds", "x"]).unwrap_err(),
            "--rounds: \"x\" is not a number from 1 to 100"
        );
    }

    #[test]
    fn unknown_names_are_errors_that_list_the_valid_ones() {
        let e = run(&["--only", "oneloop,nginx"]).unwrap_err();
        assert!(
            e.contains("unknown design \"nginx\"") && e.contains("\"tokio-mt\""),
            "{e}"
        );
        let e = run(&["--scenarios", "latency"]).unwrap_err();
        assert!(
            e.contains("unknown scenario \"latency\"") && e.contains("\"syscalls\""),
            "{e}"
        );
        let e = run(&["--tcp-only", "python"]).unwrap_err();
        assert!(e.contains("not a --server design"), "{e}");
        assert!(run(&["--frobnicate"]).is_err());
    }

    #[test]
    fn server_specs_need_a_fresh_plain_name_and_a_command() {
        for bad in ["python", "=cmd", "py thon=cmd", "oneloop=cmd", "x=  "] {
            assert!(run(&["--server", bad]).is_err(), "{bad:?} accepted");
        }
        let twice = run(&["--server", "a=x", "--server", "a=y"]).unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
        // Only the first '=' splits: the command may hold its own.
        let o = run(&["--server", "e=env A=1 ./srv"]).unwrap();
        assert!(
            matches!(&o.designs[6].kind, Kind::External { command, .. } if command == "env A=1 ./srv")
        );
    }

    #[test]
    fn serve_and_help_are_their_own_commands() {
        let parsed = parse(["--serve", "pool"].map(String::from)).unwrap();
        assert_eq!(parsed, Parsed::Serve("pool".into()));
        assert_eq!(parse(["-h".to_string()]).unwrap(), Parsed::Help);
    }

    #[test]
    fn placeholders_become_ports_and_host_and_other_braces_stay() {
        assert_eq!(
            substitute(
                "srv -p {tcp} -u {udp} -h {host} {tcp} ${X} {other}",
                8080,
                9090,
                "127.0.0.1"
            ),
            "srv -p 8080 -u 9090 -h 127.0.0.1 8080 ${X} {other}"
        );
    }
}

#[cfg(test)]
mod curves_tests {
    use super::curves::*;

    #[test]
    fn the_ladder_is_fractions_of_capacity_to_two_digits() {
        assert_eq!(
            ladder(31_233.0, &[0.25, 0.5, 0.75, 0.9]).unwrap(),
            [7_800.0, 16_000.0, 23_000.0, 28_000.0]
        );
        assert_eq!(ladder(843.0, &[0.5, 0.9]).unwrap(), [420.0, 760.0]);
        assert_eq!(
            ladder(0.004, &[0.1]).unwrap(),
            [0.001],
            "the load's lowest rate"
        );
        assert_eq!(
            ladder(5e6, &[0.9]).unwrap(),
            [1e6],
            "the load's highest rate"
        );
        assert_eq!(ladder(0.0, &[0.5]), None);
        assert_eq!(ladder(f64::NAN, &[0.5]), None);
    }

    #[test]
    fn nines_spread_the_tail() {
        let at: Vec<f64> = PERCENTILES.iter().map(|(p, _)| nines(*p)).collect();
        for (got, want) in at
            .iter()
            .zip([std::f64::consts::LOG10_2, 1.0, 2.0, 3.0, 4.0])
        {
            assert!((got - want).abs() < 1e-4, "{at:?}");
        }
        assert_eq!(label(0.5), "50% cap");
        assert_eq!(label(0.9), "90% cap");
    }
}

#[cfg(test)]
mod designs_tests {
    use super::designs::*;

    fn external(tcp_only: bool) -> Design {
        Design {
            name: "python".into(),
            kind: Kind::External {
                command: "python3 s.py {tcp}".into(),
                tcp_only,
            },
        }
    }

    #[test]
    fn external_designs_skip_what_needs_oneloops_own_options_and_tcp_only_skips_udp() {
        assert_eq!(
            external(false).skip("reuseport"),
            Some(Verdict::NotApplicable)
        );
        assert_eq!(
            external(false).skip("syscalls"),
            Some(Verdict::NotApplicable)
        );
        assert_eq!(external(false).skip("udp-echo"), None);
        assert_eq!(external(true).skip("udp-echo"), Some(Verdict::TcpOnly));
        for scenario in ["concurrency", "open-loop", "idle-holders", "rss"] {
            assert_eq!(external(true).skip(scenario), None, "{scenario}");
        }
        assert_eq!(Design::built_in("oneloop").skip("reuseport"), None);
        assert_eq!(Design::built_in("serial").kind, Kind::Variant);
    }

    #[test]
    fn verdicts_have_fixed_names_and_keep_their_detail() {
        let v = Verdict::WrongReply("answered x".into());
        assert_eq!(
            (v.code(), v.detail(), v.is_ok()),
            ("wrong reply", "answered x", false)
        );
        assert_eq!(Verdict::Died("exit 1".into()).code(), "died");
        assert_eq!(Verdict::TcpOnly.detail(), "");
        assert!(Verdict::Ok.is_ok());
    }
}

#[cfg(test)]
mod procfs_tests {
    use super::procfs::*;

    /// A stat line as the kernel writes it, with the fields this bench reads set.
    fn line(pid: u32, comm: &str, ppid: u32, pgrp: u32, times: [u64; 4]) -> String {
        let [u, s, cu, cs] = times;
        format!(
            "{pid} ({comm}) S {ppid} {pgrp} {pgrp} 0 -1 4194304 100 0 0 0 {u} {s} {cu} {cs} \
             20 0 1 0 12345 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0"
        )
    }

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let s = parse_stat(&line(42, "we ird) (name", 7, 40, [1, 2, 3, 4])).unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 42,
                ppid: 7,
                pgrp: 40,
                utime: 1,
                stime: 2,
                cutime: 3,
                cstime: 4
            }
        );
        assert_eq!(parse_stat("42 (cut"), None);
        assert_eq!(parse_stat("42 (short) S 1 2"), None);
    }

    #[test]
    fn the_tree_sums_descendants_the_group_and_waited_children_once() {
        let stats: Vec<Stat> = [
            // sh, the root, has waited for a child that spent 5 + 1 ticks.
            line(100, "sh", 1, 100, [1, 1, 5, 1]),
            line(101, "python3", 100, 100, [50, 20, 0, 0]),
            // A worker forked by python into a group of its own: found by its parent link.
            line(102, "python3", 101, 102, [7, 3, 0, 0]),
            // A grandchild of the worker.
            line(103, "helper", 102, 102, [2, 2, 0, 0]),
            // Daemonised: reparented to init, still in the root's group.
            line(104, "daemon", 1, 100, [4, 4, 0, 0]),
            // Not the server's: the bench itself and an unrelated process.
            line(1, "init", 0, 1, [1000, 1000, 0, 0]),
            line(200, "load", 1, 200, [900, 900, 0, 0]),
        ]
        .iter()
        .map(|l| parse_stat(l).unwrap())
        .collect();
        let mut pids: Vec<u32> = tree(&stats, 100).iter().map(|s| s.pid).collect();
        pids.sort();
        assert_eq!(pids, [100, 101, 102, 103, 104]);
        assert_eq!(
            tree_ticks(&stats, 100),
            (1 + 5 + 50 + 7 + 2 + 4, 1 + 1 + 20 + 3 + 2 + 4)
        );
        assert_eq!(tree_ticks(&stats, 102), (9, 5));
        assert_eq!(tree_ticks(&stats, 999), (0, 0), "no such process");
    }

    #[test]
    fn ports_are_read_from_the_socket_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                   \x20  0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
                   \x20  1: 0100007F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2\n";
        assert!(has_port(tcp, 8080, true));
        assert!(!has_port(tcp, 8081, true), "established, not listening");
        assert!(has_port(tcp, 8081, false));
        assert!(!has_port(tcp, 80, false));
        let tcp6 = "  sl  local_address                         remote_address                        st\n\
                    \x20  0: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A\n";
        assert!(has_port(tcp6, 8082, true));
        assert!(!has_port("", 8080, false));
    }
}
