# A memcached that accepts connections and never answers (SIGSTOP) must
# not hang anything (SPEC promise 9): lookups, 404s, PUTs and the status
# page are answered from the database within a bound, many at once do not
# use up the workers, the node says why in its log, and once memcached
# answers again the node uses it again without a restart.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(unique_key mc_key mc_get wait_for timed_req concurrent_gets);
use CSNode;
use Time::HiRes qw(time);

my $pidfile = "$ENV{CS_STATE_DIR}/memcached.pid";
open my $fh, '<', $pidfile or die "no memcached pid file $pidfile: $!";
my ($mcpid) = <$fh> =~ /(\d+)/;
close $fh;
die "no memcached pid in $pidfile" unless $mcpid && kill 0, $mcpid;
# Never leave memcached frozen for the next test file.
END { kill 'CONT', $mcpid if $mcpid }

my $A = CSNode->new('h47a', replicas => 1)->start;

# (response, seconds) of one request through A.
sub timed { my ($method, $path, $body) = @_;
    return timed_req($method, $A->url . $path, $body) }

my $base = '/files/' . unique_key('t47');
my ($r, $dt) = timed(PUT => "$base/before.txt", 'written before');
is $r->code, 201, 'PUT before the freeze';
ok wait_for(5, sub { defined mc_get(mc_key("$base/before.txt")) }),
    'memcached holds its entry (it is in use)';

kill 'STOP', $mcpid or die "cannot stop memcached: $!";

($r, $dt) = timed(GET => "$base/absent.txt");
is $r->code, 404, 'GET of an absent key with memcached frozen: 404';
cmp_ok $dt, '<', 3, "answered in under 3 s (took ${\ sprintf '%.2f', $dt} s)";
($r, $dt) = timed(GET => "$base/before.txt");
is $r->code . ' ' . $r->content, '200 written before',
    'GET of a stored key that is not in the local cache: 200, its bytes';
cmp_ok $dt, '<', 3, 'answered in under 3 s';
($r, $dt) = timed(PUT => "$base/during.txt", 'written during');
is $r->code, 201, 'PUT with memcached frozen: 201';
cmp_ok $dt, '<', 3, 'answered in under 3 s';
($r, $dt) = timed(GET => "$base/during.txt");
is $r->content, 'written during', 'and it reads back';
($r, $dt) = timed(GET => '/cluster-status?format=json');
is $r->code, 200, 'the status page answers';
cmp_ok $dt, '<', 3, 'in under 3 s';

# More requests at once than the node has workers for one of them to
# wait on memcached each: all answered, none waits for the freeze.
my $n = 60;
my ($bad, $all) = concurrent_gets(sub { $A->url . "$base/many-$_[0].txt" },
                                  $n, 404);
is $bad, 0, "$n concurrent GETs of absent keys all answered 404";
cmp_ok $all, '<', 10, "all $n within 10 s (took ${\ sprintf '%.2f', $all} s)";
my $log = do { open my $lf, '<', $A->error_log or die $!; local $/; <$lf> };
like $log, qr/CS117: memcached \S+ did not answer in time/,
    'the log says memcached did not answer';

kill 'CONT', $mcpid;

# Once it answers again, the node writes to it again (it is asked again
# after a few seconds at most, without a restart).
my $k = "$base/after.txt";
ok wait_for(20, sub {
        my ($p) = timed(PUT => $k, 'after ' . time);
        $p->code =~ /^20[14]$/ && defined mc_get(mc_key($k));
    }), 'after the thaw a PUT reaches memcached again';

done_testing;
