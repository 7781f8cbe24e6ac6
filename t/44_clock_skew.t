# Clocks (SPEC promises 1 and 2): each node measures its clock against the
# database's at every heartbeat, shows the difference on the status page
# and in Prometheus, and logs it.  A node more than 2 s off stops trusting
# its node-local cache; one more than 60 s off refuses writes (503) instead
# of acknowledging what its peers would refuse to replicate.  Headers that
# must be the same on every node (Last-Modified) come from the registry.
# The skewed nodes run under libfaketime (Debian package faketime).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for registry_rows);
use CSNode;
use HTTP::Date ();

# libfaketime and the AddressSanitizer runtime deadlock when both are
# preloaded (LD_PRELOAD="libasan.so libfaketimeMT.so.1" /bin/date hangs on
# Debian 12), so this file runs in the suite's plain pass only.
plan skip_all => 'libfaketime cannot be preloaded with the ASan runtime; '
    . 'this test ran in the plain pass' if ($ENV{SANITIZE} // '') eq 'address';

my ($lib) = grep { -e } map { "/usr/lib/x86_64-linux-gnu/faketime/$_" }
    qw(libfaketimeMT.so.1 libfaketime.so.1);
# faketime is installed by scripts/deps.sh; without it this test cannot
# say anything, and must not pass as if it had.
ok $lib, 'libfaketime is installed' or BAIL_OUT('libfaketime missing: run scripts/deps.sh');

sub skewed { my ($name, $offset) = @_;
    CSNode->new($name, replicas => 2,
                # NO_FAKE_STAT: file times as the kernel keeps them, as
                # on a host whose clock is off.
                env => { LD_PRELOAD => $lib, FAKETIME => $offset,
                         FAKETIME_DONT_RESET => 1, NO_FAKE_STAT => 1 })->start }
sub log_has { my ($node, $re) = @_;
    local (@ARGV, $/) = $node->error_log; my $l = <> // ''; $l =~ $re }

my $a = CSNode->new('c44a', replicas => 2)->start;
my $f = skewed('c44f', '+400');     # far off: 400 s ahead
my $g = skewed('c44g', '+20');      # a little off: 20 s ahead

ok wait_for(15, sub { my $s = $f->status; defined $s->{clock_skew_ms}
                          && $s->{clock_skew_ms} < -395_000
                          && $s->{clock_skew_ms} > -405_000 }),
    'F reports its clock 400 s ahead of the database'
    or diag explain $f->status;
ok wait_for(15, sub { my $s = $a->status; defined $s->{clock_skew_ms}
                          && abs($s->{clock_skew_ms}) < 2000 }),
    'A reports a clock that agrees with the database';
ok log_has($f, qr/CS206: node c44f: this node's clock is 4\d\d\.\d s ahead of/),
    'F logged that it refuses writes (CS206)';
like req(GET => $f->url . '/cluster-status?format=prometheus')->content,
    qr/^clusterstorage_clock_skew_seconds\{node="c44f"\} -(39\d|40\d)\.\d+$/m,
    'the skew is a Prometheus gauge';

# F takes no writes, and nothing of a refused write is left.
my $key = '/files/' . unique_key('skew') . '.txt';
my $r = req(PUT => $f->url . $key, "from the future\n");
is $r->code, 503, 'PUT on F is 503';
ok $r->header('Retry-After'), 'with Retry-After';
is registry_rows($key), 0, 'no registry entry for it';
ok !-e $f->root . $key, 'and no file';
ok log_has($f, qr/CS065: PUT \Q$key\E refused: this node's clock is/),
    'F logged why (CS065)';
is req(DELETE => $f->url . $key)->code, 503, 'DELETE on F is 503 too';
# F still serves reads.
is req(PUT => $a->url . $key, "from now\n")->code, 201, 'PUT on A is 201';
is req(GET => $f->url . $key)->content, "from now\n", 'F serves it';

# G, 20 s ahead: writes, but does not trust its cache.
ok wait_for(15, sub { my $s = $g->status; defined $s->{clock_skew_ms}
                          && $s->{clock_skew_ms} < -15_000 }),
    'G reports its clock about 20 s ahead';
ok log_has($g, qr/CS205: node c44g: this node's clock is/),
    'G logged that it does not trust its cache (CS205)';
is $g->status->{cache}{lease_ms}, 0, "G's cache lease is not renewed";
my $k2 = '/files/' . unique_key('skew-lm') . '.txt';
is req(PUT => $g->url . $k2, "written by G\n")->code, 201, 'PUT on G is 201';
ok wait_for(15, sub { scalar(my @h = $a->live_holders($k2)) >= 2 }),
    "G's write is replicated" or diag $g->log_tail, $a->log_tail;
my @lm = map { req(GET => $_->url . $k2)->header('Last-Modified') } $a, $g, $f;
ok defined $lm[0], 'a Last-Modified header';
is_deeply [@lm[1, 2]], [$lm[0], $lm[0]],
    'the same Last-Modified on every node (the registry\'s)';
my $t = HTTP::Date::str2time($lm[0]);
ok defined $t && abs($t - time) < 10,
    "G's write carries the database's time, not G's (" . ($lm[0] // '-') . ')';

done_testing;
