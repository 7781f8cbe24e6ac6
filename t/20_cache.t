# The node-local registry cache (ClusterStorageLocalCache On, cache.h):
# hits need no network, and no
# node serves an older version once a write is answered — also when a node
# misses the invalidation (stopped), cannot be reached by the writer
# (partitioned but alive), or restarts.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;
use Time::HiRes qw(time);
use Digest::SHA qw(sha256_hex);

# ClusterStorageLocalCache On, said explicitly, for the later nodes.
sub cached { my $more = shift; sub { $_[0] .= "\nClusterStorageLocalCache On\n"; $more->(@_) if $more } }

# A and B do not name the directive: the cache is on by default (SPEC §2),
# which the hits counted below show.
my $a = CSNode->new('k20a', replicas => 1)->start;
my $b = CSNode->new('k20b', replicas => 1, timeout => 2)->start;
ok !(grep { /ClusterStorageLocalCache/ } do { local (@ARGV) = "$b->{dir}/httpd.conf"; <> }),
    "B's configuration leaves ClusterStorageLocalCache at its default";

my $key = '/files/' . unique_key('cache') . '.txt';
is req(PUT => $a->url . $key, "v1\n")->code, 201, 'v1 stored on A';
is req(GET => $b->url . $key)->content, "v1\n", 'B serves v1';

# Hits on B come from its cache: the counter moves, memcached is not asked.
my $hits0 = $b->status->{cache}{hits};
is req(GET => $b->url . $key)->content, "v1\n" for 1 .. 5;
ok $b->status->{cache}{hits} >= $hits0 + 5,
    'repeated GETs on B are cache hits (the default is On)';

# 1. B misses the invalidation: its whole httpd is stopped (SIGSTOP).
my $pgid = $b->pid;
kill 'STOP', -$pgid;
my $t0 = time;
my $r = req(PUT => $a->url . $key, "v2\n");
my $took = time - $t0;
is $r->code, 204, 'v2 stored on A while B is frozen';
ok $took < 15, sprintf('the writer waited for B\'s lease, boundedly (%.1f s)', $took);
kill 'CONT', -$pgid;
$r = req(GET => $b->url . $key);
is $r->content, "v2\n", 'B, thawed, serves v2 at once (never v1)';
like do { local (@ARGV, $/) = $a->error_log; <> }, qr/CS071: \Q$key\E: node k20b could not be told/,
    'A logged that B could not be told';

# 2. A node the writer cannot reach but that keeps its heartbeat (it
#    advertises an address nobody answers on).
my $dead = CSNode::free_port();
my $c = CSNode->new('k20c', replicas => 1, edit => cached(sub {
    $_[0] =~ s{^(ClusterStorageNode k20c) \S+}{$1 http://127.0.0.1:$dead}m;
}))->start;
is req(GET => $c->url . $key)->content, "v2\n", 'C serves v2';
is req(GET => $c->url . $key)->content, "v2\n", 'C serves v2 again (cached)';
$t0 = time;
$r = req(PUT => $a->url . $key, "v3\n");
$took = time - $t0;
is $r->code, 204, 'v3 stored on A while C cannot be reached';
ok $took < 10, sprintf('A answered once C applied the queued invalidation (%.1f s)', $took);
is req(GET => $c->url . $key)->content, "v3\n", 'C serves v3, not v2';

# 3. A delete reaches the caches too.
is req(DELETE => $a->url . $key)->code, 204, 'deleted on A';
is req(GET => $b->url . $key)->code, 404, 'B answers 404';
is req(GET => $c->url . $key)->code, 404, 'C answers 404';

# 4. Restart: an empty cache, still correct.
is req(PUT => $a->url . $key, "v5\n")->code, 201, 'stored again';
$b->stop;
$b->start;
is req(GET => $b->url . $key)->content, "v5\n", 'B after a restart serves v5';

# 4b. B's copy changes on disk behind the module's back.  Hits skip the
#     attributes only while the file's inode and ctime are the ones that
#     were verified (cache.h, 5.): any change is noticed on the next GET.
my $bfile = $b->root . $key;
# Identities are noted only for files whose ctime is 2 s old or more.
ok wait_for(10, sub { time - (Time::HiRes::stat($bfile))[10] >= 2.2 }),
    "B's copy is more than 2 s old";
req(GET => $b->url . $key) for 1 .. 3;     # verified, identity noted
my $sha5 = sha256_hex("v5\n");
system('setfattr', '-n', 'user.clusterstorage.meta', '-v', "4 $sha5 $key", $bfile) == 0
    or die "setfattr on $bfile failed";
my $fetched = $b->counter('peer_fetches');
$r = req(GET => $b->url . $key);
is $r->content, "v5\n", 'a copy whose attributes now say v4 is not served as v5 ...';
is $b->counter('peer_fetches'), $fetched + 1, '... B fetched v5 again instead';
req(GET => $b->url . $key) for 1 .. 3;     # the new copy is verified
truncate($bfile, 1) or die "truncate $bfile: $!";
$fetched = $b->counter('peer_fetches');
$r = req(GET => $b->url . $key);
is $r->content, "v5\n", 'a copy cut short on disk is not served: B serves v5 ...';
is $b->counter('peer_fetches'), $fetched + 1, '... fetched again from A';
like do { local (@ARGV, $/) = $b->error_log; <> }, qr/CS024: local copy of \Q$key\E/,
    'and B says why';
is req(PUT => $a->url . $key, "v5\n")->code, 204, 'stored again (v6)';
is req(GET => $b->url . $key)->content, "v5\n", 'B serves v6';

# 5. Database down: the cache is trusted only while the lease runs; once it
#    lapses (no heartbeat can renew it), hits are served as unverified.
use CSTest qw(svc mc_raw mc_key);
END { eval { svc('start-db') } }
req(GET => $b->url . $key) for 1 .. 2;
svc('stop-db');
my $first = req(GET => $b->url . $key);
is $first->code, 200, 'database down: B still serves its copy';
ok wait_for(15, sub {
    mc_raw('delete ' . mc_key($key) . "\r\n");     # memcached can't tell either
    my $g = req(GET => $b->url . $key);
    $g->code == 200 && ($g->header('X-ClusterStorage-Unverified') // '') eq '1' }),
    'once the lease lapses, B marks its answers unverified';
svc('start-db');
ok wait_for(20, sub { $b->status->{cache}{lease_ms} > 0 }),
    'the lease is renewed when the database is back';

# 6. Renewing the lease and giving it up at a stop take the node's lease
#    lock, so that neither happens in the middle of the other (cache.h).
#    While something else holds it, C renews nothing, and stopping C
#    leaves its lease to age out instead of dropping it.
use Fcntl qw(:flock);
my $lockfile = $c->root . '/.clusterstorage/locks/lease';
open my $lk, '>>', $lockfile or die "$lockfile: $!";
flock($lk, LOCK_EX) or die "flock $lockfile: $!";
my $age = sub {
    my ($n) = grep { $_->{name} eq 'k20c' } @{ ($a->status // {})->{nodes} // [] };
    return $n ? $n->{heartbeat_age} : -1;
};
ok wait_for(15, sub { $age->() >= 3 }),
    "with C's lease lock held, C records no heartbeat (age " . $age->() . ' s)';
$c->stop;
cmp_ok CSTest::sql("SELECT lease FROM cs_nodes WHERE name = 'k20c'"), '>', 0,
    'C stopped while its lease lock was held: its lease is left in the registry';
my $clog = do { local (@ARGV, $/) = $c->error_log; <> // '' };
unlike $clog, qr/CS217|still did not exit/,
    "... by C's own exit, which waited for nothing (no heartbeat blocked on the lock, no kill)";
close $lk;

$_->stop for $a, $b, $c;
# A node stopping gracefully gives its lease up; it still counts as up
# until its heartbeat is three periods old (C advertises an address nobody
# answers on, so pushes to it would fail).  Let both happen, so that the
# next test files neither wait for a lease nor push to a node that is gone.
ok CSTest::nodes_gone(qw(k20a k20b k20c)),
    'the stopped nodes\' leases have lapsed and they count as down';
done_testing;
