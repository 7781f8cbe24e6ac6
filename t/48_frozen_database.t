# A database that accepts connections and never answers (SIGSTOP) must not
# hang anything (SPEC promise 9): each request is answered within the
# database timeout (503 for what needs the registry, 200 unverified for a
# local copy), requests that come after the first one that waited do not
# wait at all, the node says why in its log, and once the database answers
# again the node uses it again without a restart, with nothing
# half-written from the freeze.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(unique_key mc_raw wait_for registry_rows timed_req
              concurrent_gets);
use CSNode;
use Time::HiRes qw(time);

my $pidfile = "$ENV{CS_STATE_DIR}/mariadb.pid";
open my $fh, '<', $pidfile or die "no MariaDB pid file $pidfile: $!";
my ($dbpid) = <$fh> =~ /(\d+)/;
close $fh;
die "no MariaDB pid in $pidfile" unless $dbpid && kill 0, $dbpid;
# Never leave the database frozen for the next test file.
END { kill 'CONT', $dbpid if $dbpid }

sub frozen {
    open my $st, '<', "/proc/$dbpid/stat" or return 0;
    my $line = <$st>;
    return $line =~ /^\d+ \(.*\) T /;
}

# Two nodes; A holds the copies (replicas 1: B has none unless it reads
# one); the database timeout is the default.
my $A = CSNode->new('h48a', replicas => 1)->start;
my $B = CSNode->new('h48b', replicas => 2)->start;

# (response, seconds) of one request through a node.
sub timed { my ($node, $method, $path, $body) = @_;
    return timed_req($method, $node->url . $path, $body) }
sub secs { sprintf '%.2f s', $_[0] }

my $base = '/files/' . unique_key('t48');
my ($r, $dt) = timed($A, PUT => "$base/local.txt", 'a local copy');
is $r->code, 201, 'PUT before the freeze';
($r) = timed($A, PUT => "$base/victim.txt", 'do not delete me');
is $r->code, 201, 'a second key, for the DELETE';
# Both nodes have used the database (their connections are made).
for my $n ($A, $B) {
    ($r) = timed($n, GET => "$base/never-$n->{name}.txt");
    is $r->code, 404, "GET of an absent key through $n->{name}: 404";
}

kill 'STOP', $dbpid or die "cannot stop MariaDB: $!";
ok wait_for(5, \&frozen), 'MariaDB is frozen (state T)';
# memcached may hold entries: take them away, so that every lookup below
# needs the database.
mc_raw("flush_all\r\n");

# The first requests may wait for the database, within the timeout (5 s).
my $bound = 5 + 2;
($r, $dt) = timed($A, GET => "$base/absent.txt");
is $r->code, 503, 'GET of an absent key with the database frozen: 503';
cmp_ok $dt, '<', $bound, "within the timeout and a margin (took ${\ secs($dt)})";
($r, $dt) = timed($A, PUT => "$base/during.txt", 'written during');
is $r->code, 503, 'PUT with the database frozen: 503';
cmp_ok $dt, '<', $bound, "within the timeout (took ${\ secs($dt)})";
like $r->header('Retry-After') // '', qr/^\d+$/, 'with Retry-After';
($r, $dt) = timed($A, DELETE => "$base/victim.txt");
is $r->code, 503, 'DELETE with the database frozen: 503';
cmp_ok $dt, '<', $bound, "within the timeout (took ${\ secs($dt)})";
($r, $dt) = timed($A, GET => "$base/local.txt");
is $r->code . ' ' . $r->content, '200 a local copy',
    'GET of a local copy: 200, its bytes';
is $r->header('X-ClusterStorage-Unverified'), 1, 'marked unverified';
cmp_ok $dt, '<', $bound, "within the timeout (took ${\ secs($dt)})";
($r, $dt) = timed($B, GET => "$base/local.txt");
is $r->code, 503, 'GET through the node without a copy: 503';
cmp_ok $dt, '<', $bound, "within the timeout (took ${\ secs($dt)})";
($r, $dt) = timed($A, GET => '/cluster-status?format=json');
is $r->code, 200, 'the status page answers';
cmp_ok $dt, '<', $bound, "within the timeout (took ${\ secs($dt)})";
like $r->content, qr/"db_outages"\s*:\s*[1-9]/,
    'and counts the outage (db_outages)';

# Now that the node knows, nothing waits: many requests at once, more
# than the node's workers could hold for 5 s each at this rate.
my $n = 60;
my ($bad, $all) = concurrent_gets(
    sub { ($_[0] % 2 ? $A : $B)->url . "$base/many-$_[0].txt" }, $n, 503);
is $bad, 0, "$n concurrent GETs through both nodes all answered 503";
cmp_ok $all, '<', $bound, "all $n within the timeout (took ${\ secs($all)})";
($r, $dt) = timed($A, PUT => "$base/during2.txt", 'written during');
is $r->code, 503, 'a PUT now: 503';
cmp_ok $dt, '<', 1.5, "at once (took ${\ secs($dt)})";

for my $node ($A, $B) {
    my $log = do { open my $lf, '<', $node->error_log or die $!; local $/; <$lf> };
    like $log, qr/CS123: the database .* counts as unreachable/,
        "$node->{name}'s log says the database is unreachable (CS123)";
}
ok frozen(), 'MariaDB was frozen all along';

kill 'CONT', $dbpid;

# Once it answers, the node uses it again, without a restart.
my $k = "$base/after.txt";
ok wait_for(20, sub {
        my ($p) = timed($A, PUT => $k, 'after the thaw');
        $p->code == 201;
    }), 'after the thaw a PUT is stored again';
($r) = timed($B, GET => $k);
is $r->code . ' ' . $r->content, '200 after the thaw',
    'and reads back through the other node';
ok wait_for(20, sub {
        my ($p) = timed($B, GET => "$base/absent.txt");
        $p->code == 404;
    }), 'an absent key is 404 again on the other node';
for my $node ($A, $B) {
    ok wait_for(10, sub {
            my $log = do { open my $lf, '<', $node->error_log or die $!;
                           local $/; <$lf> };
            $log =~ /CS124: the database answers again/;
        }), "$node->{name}'s log says the database answers again (CS124)";
}

# Nothing from the freeze was half-written.
($r) = timed($A, GET => "$base/during.txt");
is $r->code, 404, 'the PUT refused during the freeze stored nothing';
($r) = timed($B, GET => "$base/victim.txt");
is $r->code . ' ' . $r->content, '200 do not delete me',
    'the DELETE refused during the freeze deleted nothing';
is registry_rows("$base/during.txt") + registry_rows("$base/during2.txt"), 0,
    'and the registry has no entry for them';

$_->stop for $A, $B;
done_testing;
