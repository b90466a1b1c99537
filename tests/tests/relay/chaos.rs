//! The chaos test of group conversations (issue 13): six devices of four users in three groups
//! send, commit updates, and add and remove a member concurrently for a bounded time, while
//! devices go offline and come back at random and the relay is killed with SIGKILL and
//! restarted twice. At the end, every device of every current member has decrypted every
//! message sent while it was a member: nothing undecryptable, lost or duplicated, and every
//! device on its group's epoch. It prints the counts.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sealroom_client::{EventKind, GroupEvent, Session};
use sealroom_protocol::ConversationId;
use sealroom_session::Payload;
use sealroom_tests::{Rng, TestServer};

/// How long the devices act.
const CHAOS: Duration = Duration::from_secs(20);
/// How many times the relay is killed.
const KILLS: usize = 2;

/// One device and everything it read.
struct Device {
    tag: String,
    user: String,
    session: Session,
    events: Vec<GroupEvent>,
}

impl Device {
    async fn sync(&mut self) -> Result<(), String> {
        let events = self.session.sync_groups().await.map_err(|e| format!("{}: {e}", self.tag))?;
        self.events.extend(events);
        Ok(())
    }

    fn groups_in(&self, groups: &[ConversationId]) -> Vec<ConversationId> {
        groups.iter().copied().filter(|g| self.session.group_epoch(*g).is_some()).collect()
    }
}

/// What the drivers did: messages the relay acknowledged, and those whose answer was lost.
#[derive(Default)]
struct Record {
    confirmed: Vec<(ConversationId, u64, String, String)>,
    unconfirmed: Vec<String>,
    commits: usize,
    failures: usize,
}

async fn act(
    dev: &mut Device,
    groups: &[ConversationId],
    admin_group: Option<ConversationId>,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
    record: &RefCell<Record>,
) {
    let mut n = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let mine = dev.groups_in(groups);
        let roll = rng.below(100);
        let ok = match roll {
            0..=49 if !mine.is_empty() => {
                let group = mine[rng.below(mine.len() as u64) as usize];
                n += 1;
                let text = format!("{}:{n}", dev.tag);
                match dev.session.send_group(group, &Payload::Text(text.clone())).await {
                    Ok(a) => {
                        record.borrow_mut().confirmed.push((group, a.seq, text, dev.tag.clone()));
                        true
                    }
                    Err(_) => {
                        record.borrow_mut().unconfirmed.push(text);
                        false
                    }
                }
            }
            50..=64 if !mine.is_empty() => {
                let group = mine[rng.below(mine.len() as u64) as usize];
                let done = dev.session.update_keys(group).await.is_ok();
                record.borrow_mut().commits += usize::from(done);
                done
            }
            65..=74 => {
                // Offline for a while.
                tokio::time::sleep(Duration::from_millis(200 + rng.below(800))).await;
                true
            }
            75..=84 if admin_group.is_some() => {
                // The admin takes dan out of the group, or puts him back.
                let group = admin_group.unwrap_or(ConversationId(0));
                let member = match dev.session.group(group).await {
                    Ok(g) => g.members.iter().any(|m| m.user.as_str() == "dan"),
                    Err(_) => continue,
                };
                let done = if member {
                    dev.session.remove_members(group, &["dan"]).await.is_ok()
                } else {
                    dev.session.add_members(group, &["dan"]).await.is_ok()
                };
                record.borrow_mut().commits += usize::from(done);
                done
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(30)).await;
                true
            }
        };
        if !ok {
            record.borrow_mut().failures += 1;
            // The relay may be down: wait a moment before the next try.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = dev.sync().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn six_devices_in_three_groups_survive_chaos_and_two_sigkills() {
    let seed = Rng::seed_from_env("SEALROOM_CHAOS_SEED");
    let server = TestServer::start();
    let users = ["ann", "ben", "cat", "dan"];
    let mut devices = Vec::new();
    for user in users {
        let session = server.register(user).await;
        devices.push(Device { tag: format!("{user}-a"), user: user.into(), session, events: Vec::new() });
    }
    for user in ["ann", "ben"] {
        let session = server.client().login(user, &format!("password-of-{user}")).await.unwrap();
        devices.push(Device { tag: format!("{user}-b"), user: user.into(), session, events: Vec::new() });
    }
    for d in &mut devices {
        d.session.mls_start().await.unwrap();
    }
    let g1 = devices[0].session.create_group(&["ben", "cat", "dan"]).await.unwrap();
    let g2 = devices[1].session.create_group(&["ann", "cat"]).await.unwrap();
    let g3 = devices[2].session.create_group(&["dan", "ben"]).await.unwrap();
    let groups = [g1, g2, g3];
    for d in &mut devices {
        d.sync().await.unwrap();
    }
    for (tag, expected) in
        [("ann-a", 2), ("ann-b", 2), ("ben-a", 3), ("ben-b", 3), ("cat-a", 3), ("dan-a", 2)]
    {
        let d = devices.iter().find(|d| d.tag == tag).unwrap();
        assert_eq!(d.groups_in(&groups).len(), expected, "{tag} before the chaos");
    }

    // The killer runs on a thread of its own (the devices' futures share this one).
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let mut server = server;
        let mut rng = Rng::seeded(seed ^ 0x5eed);
        std::thread::spawn(move || {
            let slot = CHAOS.as_millis() as u64 / (KILLS as u64 + 1);
            for i in 0..KILLS as u64 {
                let at = slot * (i + 1) - slot / 2 + rng.below(slot);
                let elapsed = slot * i;
                std::thread::sleep(Duration::from_millis(at.saturating_sub(elapsed).min(slot)));
                server.kill();
                std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
                server.start_again_same_port();
            }
            std::thread::sleep(CHAOS.saturating_sub(Duration::from_millis(slot * KILLS as u64)));
            stop.store(true, Ordering::SeqCst);
            server
        })
    };
    let record = RefCell::new(Record::default());
    {
        let mut seeds = Rng::seeded(seed);
        let drivers = devices.iter_mut().map(|d| {
            let admin = (d.tag == "ann-a").then_some(g1);
            act(d, &groups, admin, Rng::seeded(seeds.below(u64::MAX)), stop.clone(), &record)
        });
        tokio::time::timeout(Duration::from_secs(90), futures_util::future::join_all(drivers))
            .await
            .expect("the devices stop after the chaos");
    }
    let server = killer.join().unwrap();

    // Quiet: everyone catches up and tidies until nothing changes.
    for _ in 0..3 {
        for d in &mut devices {
            d.sync().await.unwrap();
            d.session.tidy_groups().await.unwrap();
        }
    }
    for d in &mut devices {
        d.sync().await.unwrap();
    }
    let record = record.into_inner();

    // Who was a member when: every device's joins, and the removals every device saw.
    let mut removals: BTreeMap<(ConversationId, String), BTreeSet<u64>> = BTreeMap::new();
    for d in &devices {
        for e in &d.events {
            if let EventKind::Commit(c) = &e.what {
                for (user, _) in &c.removed {
                    removals.entry((e.conversation, user.clone())).or_default().insert(e.seq);
                }
            }
        }
    }
    let mut undecryptable = 0;
    let mut refused = 0;
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    let mut read_total = 0;
    for d in &devices {
        let mut read: BTreeMap<(ConversationId, u64), String> = BTreeMap::new();
        for e in &d.events {
            match &e.what {
                EventKind::Message { payload: Payload::Text(t), .. } => {
                    read_total += 1;
                    if read.insert((e.conversation, e.seq), t.clone()).is_some() {
                        duplicated.push(format!("{} read #{}/{} twice", d.tag, e.conversation, e.seq));
                    }
                }
                EventKind::Unreadable(why) => {
                    undecryptable += 1;
                    eprintln!("{} could not read #{}/{}: {why}", d.tag, e.conversation, e.seq);
                }
                EventKind::Refused(why) => {
                    refused += 1;
                    eprintln!("{} refused #{}/{}: {why}", d.tag, e.conversation, e.seq);
                }
                // A send the kills left without an answer, which the device could not send
                // again because its user was removed meanwhile: it is among the unconfirmed.
                EventKind::Unconfirmed(why) => eprintln!("{} #{}: {why}", d.tag, e.conversation),
                _ => {}
            }
        }
        // The device was a member from each join (or from the start, for the creator's first
        // device) until its user's next removal.
        let creator = |g: ConversationId| match g {
            x if x == g1 => "ann-a",
            x if x == g2 => "ben-a",
            _ => "cat-a",
        };
        for (group, seq, text, sender) in &record.confirmed {
            if sender == &d.tag {
                continue;
            }
            let mut starts: Vec<u64> = d
                .events
                .iter()
                .filter(|e| e.conversation == *group && e.what == EventKind::Joined)
                .map(|e| e.seq)
                .collect();
            if creator(*group) == d.tag {
                starts.push(0);
            }
            let removed = removals.get(&(*group, d.user.clone()));
            let member = starts.iter().any(|&from| {
                let until = removed.and_then(|r| r.range(from + 1..).next().copied()).unwrap_or(u64::MAX);
                from < *seq && *seq < until
            });
            if member && read.get(&(*group, *seq)) != Some(text) {
                lost.push(format!(
                    "{} did not read {text} (#{group}/{seq}; it joined at {starts:?}, its user was removed at {removed:?})",
                    d.tag
                ));
            }
        }
    }
    // The same text stored twice would be a resend stored as a new message.
    let mut texts_seen: BTreeMap<&str, BTreeSet<(ConversationId, u64)>> = BTreeMap::new();
    for d in &devices {
        for e in &d.events {
            if let EventKind::Message { payload: Payload::Text(t), .. } = &e.what {
                texts_seen.entry(t.as_str()).or_default().insert((e.conversation, e.seq));
            }
        }
    }
    for (text, places) in &texts_seen {
        if places.len() > 1 {
            duplicated.push(format!("{text} is in the log {} times: {places:?}", places.len()));
        }
    }

    // Every device of every current member is on its group's epoch.
    let mut off_epoch = Vec::new();
    for group in groups {
        let state = devices[1].session.group(group).await.unwrap_or_else(|_| panic!("ben sees #{group}"));
        let members: BTreeSet<&str> = state.members.iter().map(|m| m.user.as_str()).collect();
        for d in devices.iter().filter(|d| members.contains(d.user.as_str())) {
            if d.session.group_epoch(group) != Some(state.epoch) {
                off_epoch.push(format!(
                    "{} at {:?} in #{group}, the relay at {}",
                    d.tag,
                    d.session.group_epoch(group),
                    state.epoch
                ));
            }
        }
    }
    eprintln!(
        "chaos: {} messages acknowledged ({} answers lost to the kills), {} read by devices, {} commits, \
         {} failed calls; undecryptable {undecryptable}, refused {refused}, lost {}, duplicated {}, \
         devices off their group's epoch {}",
        record.confirmed.len(),
        record.unconfirmed.len(),
        read_total,
        record.commits,
        record.failures,
        lost.len(),
        duplicated.len(),
        off_epoch.len(),
    );
    assert!(
        record.confirmed.len() > 50,
        "the devices sent too little for a test: {}",
        record.confirmed.len()
    );
    assert!(record.failures > 0, "the kills never hit a device");
    assert_eq!((undecryptable, refused), (0, 0));
    assert!(lost.is_empty(), "{lost:#?}");
    assert!(duplicated.is_empty(), "{duplicated:#?}");
    assert!(off_epoch.is_empty(), "{off_epoch:#?}");
    drop(server);
}
