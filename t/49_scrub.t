# The background scrub (SPEC promise 10): a copy whose bytes rotted in
# place, keeping its size and mtime (nothing else notices: a GET would
# serve it), is found by the next pass, moved to the quarantine, replaced
# by a good copy from another holder, and logged; the scrub's progress is
# on the status page; files that are not the module's copies are left
# alone; a node with the scrub off reads nothing.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;
use Digest::SHA qw(sha256_hex);

my $fast = sub { $_[0] .= "\nClusterStorageScrubRate 100M\n"
                          . "ClusterStorageScrubInterval 1\n" };
my $off = sub { $_[0] .= "\nClusterStorageScrubRate Off\n" };
my $A = CSNode->new('s49a', replicas => 1, edit => $fast)->start;
my $B = CSNode->new('s49b', replicas => 1, edit => $fast)->start;
my $C = CSNode->new('s49c', replicas => 1, edit => $off)->start;

my $base = '/files/' . unique_key('scrub');
my %body = (
    "$base/small.txt" => "ten bytes\n",
    "$base/mid.bin"   => join('', map { chr(($_ * 7) % 256) } 1 .. 65536),
    "$base/big.bin"   => join('', map { chr(($_ * 31 + 7) % 256) } 1 .. 1 << 20),
);
my $total = 0;
for my $k (sort keys %body) {
    is req(PUT => $A->url . $k, $body{$k})->code, 201, "PUT $k on A";
    is req(GET => $B->url . $k)->code, 200, "B reads it (a second holder)";
    $total += length $body{$k};
}
my $big = "$base/big.bin";
is req(GET => $C->url . "$base/mid.bin")->code, 200, 'C holds a copy too';

sub disk_sha { my ($node, $k) = @_;
    open my $fh, '<:raw', $node->root . $k or return '';
    local $/; my $d = <$fh>; return sha256_hex($d // '') }
sub log_of { my ($node) = @_; local (@ARGV, $/) = $node->error_log; <> // '' }
sub quarantined { my ($node) = @_;
    opendir my $dh, $node->root . '/.clusterstorage/quarantine' or return 0;
    return scalar grep { !/^\./ } readdir $dh }

# A whole pass over A's copies, counted.
my $passes = $A->counter('scrub_passes');
ok wait_for(30, sub { $A->counter('scrub_passes') >= $passes + 2 }),
    'A finishes scrub passes';
cmp_ok $A->counter('scrub_files'), '>=', 3, 'it re-hashed the copies';
cmp_ok $A->counter('scrub_bytes'), '>=', $total, 'all their bytes';
is $A->counter('scrub_damaged'), 0, 'and found nothing damaged';
like log_of($A), qr/CS210: scrub pass done: \d+ copies/, 'a pass is logged (CS210)';

# A file that is not one of the module's copies is left alone.
my $foreign = $A->root . '/files/' . unique_key('foreign') . '.txt';
open my $ff, '>', $foreign or die "$foreign: $!";
print $ff "put here by hand\n";
close $ff;
$passes = $A->counter('scrub_passes');
ok wait_for(30, sub { $A->counter('scrub_passes') >= $passes + 2 }),
    'two more passes with a foreign file in the root';
ok -e $foreign, 'the foreign file is still there';
is quarantined($A), 0, 'nothing went to the quarantine';

# A's copy of big.bin rots: 16 bytes in place, size and mtime kept.
my $path = $A->root . $big;
my $ref = "$ENV{CS_STATE_DIR}/s49.ref";
system('touch', '-r', $path, $ref) == 0 or die 'touch -r';
my @st0 = stat $path;
open my $fh, '+<:raw', $path or die "$path: $!";
seek $fh, 500_000, 0;
print $fh 'X' x 16;
close $fh;
system('touch', '-m', '-r', $ref, $path) == 0 or die 'touch -m -r';
unlink $ref;
my @st1 = stat $path;
is "$st1[7] $st1[9]", "$st0[7] $st0[9]", "A's copy kept its size and mtime";
isnt disk_sha($A, $big), sha256_hex($body{$big}), "A's copy is damaged";

ok wait_for(30, sub { $A->counter('scrub_damaged') >= 1 }),
    'the scrub finds it (scrub_damaged)';
like log_of($A), qr/CS209: scrub: copy of \Q$big\E v1 is damaged/,
    'and says so (CS209)';
is quarantined($A), 1, 'the damaged copy is in the quarantine';
ok wait_for(10, sub { disk_sha($A, $big) eq sha256_hex($body{$big}) }),
    "A's copy was replaced by a good one";
like log_of($A), qr/CS215: scrub: \Q$big\E v1 replaced by a good copy from s49b/,
    'from the good holder B (CS215)';
ok wait_for(10, sub { grep { $_ eq 's49a' } $B->live_holders($big) }),
    'A is a holder again';
is disk_sha($B, $big), sha256_hex($body{$big}), "B's copy was never touched";
my $r = req(GET => $A->url . $big);
is sha256_hex($r->content), sha256_hex($body{$big}), 'A serves the right bytes';
for my $k ("$base/small.txt", "$base/mid.bin") {
    is disk_sha($A, $k), sha256_hex($body{$k}), "$k left as it was";
}

# The status page shows the scrub's progress, in JSON and for Prometheus.
my $st = $A->status;
ok $st && $st->{counters}{scrub_passes} >= 1, 'JSON counters have scrub_passes';
like req(GET => $A->url . '/cluster-status?format=prometheus')->content,
    qr/^clusterstorage_scrub_damaged_total\{node="s49a"\} 1$/m,
    'Prometheus has scrub_damaged';

# C has the scrub off: it read nothing all along, though it holds a copy.
is $C->counter('scrub_passes'), 0, 'C (scrub Off) made no pass';
is $C->counter('scrub_bytes'), 0, 'and read nothing';

$_->stop for $A, $B, $C;
done_testing;
