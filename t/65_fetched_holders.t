# A node that fetches a copy serves it at once and registers itself as its
# holder afterwards, for many copies in one statement (src/holders.h).
# The registry is made to refuse B's holder rows for a while (a trigger):
# B still serves every copy it fetched; once the registry takes them, one
# statement registers all of them (CS155), except a copy that left B's
# disk meanwhile; a copy fetched just before B is killed stays on B and is
# served there after the restart, and the registry never names B for a
# copy it does not have.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for sql sql_str);
use POSIX ();
use CSNode;
use Digest::SHA qw(sha256_hex);

my $noscrub = sub { $_[0] .= "\nClusterStorageScrubRate Off\n" };
# One replica: A, the writer, holds each key alone; B fetches.
my ($A, $B) = map { CSNode->new("r65$_", replicas => 1, edit => $noscrub)->start }
    qw(a b);

sub log_of { my ($node) = @_; local (@ARGV, $/) = $node->error_log; <> // '' }
sub b_holds { my ($key) = @_;
    sql('SELECT COUNT(*) FROM cs_replicas WHERE node = ' . sql_str($B->name)
        . ' AND path = ' . sql_str($key)) }
sub b_holds_all { my (@keys) = @_;
    sql('SELECT COUNT(*) FROM cs_replicas WHERE node = ' . sql_str($B->name)
        . ' AND path IN (' . join(',', map { sql_str($_) } @keys) . ')') }

# While t65_block has a row, the registry refuses B's holder rows.
sql('CREATE TABLE IF NOT EXISTS t65_block (x INT)');
sql('DROP TRIGGER IF EXISTS t65_refuse');
# (One statement without a ';': a NULL key is refused, error 1048.)
sql('CREATE TRIGGER t65_refuse BEFORE INSERT ON cs_replicas FOR EACH ROW'
    . ' SET NEW.path = IF(NEW.node = ' . sql_str($B->name)
    . ' AND EXISTS (SELECT 1 FROM t65_block), NULL, NEW.path)');
END { eval { sql('DROP TRIGGER IF EXISTS t65_refuse');
             sql('DROP TABLE IF EXISTS t65_block') } }
sub block   { sql('INSERT INTO t65_block VALUES (1)') }
sub unblock { sql('DELETE FROM t65_block') }

my $base = '/files/' . unique_key('held');
my (%body, @keys);
for my $i (1 .. 42) {
    my $k = sprintf '%s/k%02d.bin', $base, $i;
    $body{$k} = join '', map { chr(($_ * 7 + $i) % 256) } 1 .. 20_000 + $i;
    push @keys, $k;
}
my ($gone, $crash, @many) = @keys;
my $put_ok = grep { req(PUT => $A->url . $_, $body{$_})->code == 201 } @keys;
is $put_ok, 42, 'PUT of 42 keys on A';
is b_holds_all(@keys), 0, 'B holds none of them';

block();
# 40 fetches at once, then one more whose copy leaves B's disk.
my @pids;
for my $k (@many) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $c = req(GET => $B->url . $k)->code;
        POSIX::_exit($c == 200 ? 0 : $c % 256 || 1);
    }
    push @pids, $pid;
}
my @codes;
for (@pids) { waitpid $_, 0; push @codes, $? >> 8 }
my @bad = grep { $_ } @codes;
is scalar(@bad), 0, 'B answers 200 to each of 40 GETs at once it must fetch for'
    or diag "answers other than 200 (mod 256): @bad; B: "
        . join('', grep { /:(warn|error|crit)\]/ } split /^/, log_of($B))
        . 'A: ' . join('', grep { /:(warn|error|crit)\]/ } split /^/, log_of($A));
my $same = grep { (req(GET => $B->url . $_)->content // '') eq $body{$_} } @many;
is $same, 40, 'B serves the right bytes of all 40';
is req(GET => $B->url . $gone)->content, $body{$gone}, 'B serves one more';
ok wait_for(20, sub { log_of($B) =~ /CS153: \d+ fetched copies could not be registered/ }),
    'the refused registration is logged (CS153)';
is b_holds_all(@many, $gone), 0, 'while the registry refuses, B is no holder';
ok unlink($B->root . $gone), "that copy leaves B's disk";

unblock();
ok wait_for(20, sub { b_holds_all(@many) == 40 }),
    'once the registry takes them, B is the holder of all 40';
# B runs two children; each wrote what it had kept in a few statements,
# not one per copy.  A key whose lock stripe the other child's statement
# holds at that moment waits for its next one (the locks are only tried),
# so a child's copies may take more than one.
sub batches {
    my @l = log_of($B) =~ /CS155: registered (\d+) fetched copies in \d+ ms; (\d+) no longer there/g;
    my ($sum, $max, $gone_n, $stmts) = (0, 0, 0, 0);
    while (my ($reg, $no) = splice @l, 0, 2) {
        $sum += $reg; $gone_n += $no; $max = $reg if $reg > $max;
        $stmts++ if $reg > 0;
    }
    return ($sum, $max, $gone_n, $stmts);
}
wait_for(10, sub { (batches())[0] >= 40 });
my ($sum, $max, $gone_n, $stmts) = batches();
is $sum, 40, 'the batches registered the 40 copies that waited';
ok $stmts <= 10 && $max >= 10,
    "in a few statements ($stmts, the largest $max), not one per copy";
is $gone_n, 1, 'the copy that left the disk was left out (1 no longer there)';
is b_holds($gone), 0, 'B is not named for the copy it no longer has';

# A copy fetched just before B dies.
block();
my $before = () = log_of($B) =~ /CS153: /g;
is req(GET => $B->url . $crash)->content, $body{$crash}, 'B fetches and serves another';
ok wait_for(20, sub { (() = log_of($B) =~ /CS153: /g) > $before }),
    'its registration is refused too';
my $ino = (stat($B->root . $crash))[1];
ok $ino, 'the copy is on B';
ok $B->kill9, 'B is killed (SIGKILL) with that registration pending';
unblock();
$B->start;
is b_holds($crash), 0, 'the registry does not name B for it';
my $r = req(GET => $B->url . $crash);
is $r->code, 200, 'after the restart B answers 200';
is sha256_hex($r->content), sha256_hex($body{$crash}), '... with the right bytes';
is((stat($B->root . $crash))[1], $ino, '... from the copy it kept (not fetched again)');

done_testing;
