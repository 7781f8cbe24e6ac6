# A node whose disk is full: a PUT gets 507 and changes nothing (no file,
# no registry entry, no temp file); replication to it fails and is retried
# later, reaching it once space is freed.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for tmp_files registry_rows);
use CSNode;
use File::Path qw(remove_tree);

my $small = $ENV{CS_MNT_SMALL};
ok $small && -d $small && -w $small,
    'scripts/test.sh provided a small (4 MB) file system'
    or BAIL_OUT('run the suite as root through scripts/test.sh');

my $full = CSNode->new('d40full', root => $small, replicas => 1)->start;
my $writer = CSNode->new('d40w', replicas => 3)->start;

sub tmp_in { opendir my $d, "$small/.clusterstorage/tmp" or return (); grep { !/^\./ } readdir $d }

# Fill most of the file system with a ballast file outside the store.
my $ballast = "$small/ballast";
open my $fh, '>', $ballast or die $!;
print $fh "\0" x (3 * 1024 * 1024);
close $fh;

my $key = '/files/' . unique_key('full') . '.bin';
my $r = req(PUT => $full->url . $key, 'x' x (2 * 1024 * 1024));
is $r->code, 507, 'PUT on a full disk is 507 Insufficient Storage';
ok !-e "$small$key", 'no file was stored';
is registry_rows($key), 0, 'nothing was registered';
ok wait_for(5, sub { !tmp_in() }), 'no temp file stays behind';
like do { local (@ARGV, $/) = $full->error_log; <> }, qr/CS033: PUT \Q$key\E: cannot write the temp file/,
    'the error log says why';

# Replication towards the full node fails and is retried.
my $rkey = '/files/' . unique_key('full-repl') . '.bin';
my $body = 'r' x (2 * 1024 * 1024);
is req(PUT => $writer->url . $rkey, $body)->code, 201, 'PUT on another node';
ok wait_for(20, sub {
    my $log = do { local (@ARGV, $/) = $full->error_log; <> } // '';
    $log =~ /\Q$rkey\E/ }), 'the full node refused the replica';
ok !-e "$small$rkey", 'and holds no partial copy';
# (A temp file exists while a retry is being received; each refused
# transfer removes its own once its request ends.)
ok wait_for(10, sub { !tmp_in() }), 'and no temp file stays behind';

# Free the space: the queued job reaches the node on a later retry.
unlink $ballast;
ok wait_for(60, sub { -e "$small$rkey" && -s "$small$rkey" == length $body }),
    'after space is freed, replication reaches the node';
is req(GET => $full->url . $rkey)->content, $body, 'and it serves the bytes';

$full->stop;
$writer->stop;
remove_tree("$small/files", "$small/htdocs", "$small/.clusterstorage");
done_testing;
