# Hostile uploads (SPEC promise 8): a key httpd would read as per-directory
# configuration (.htaccess and every .ht* name, the server's AccessFileName
# names) is refused and stored nowhere; a partial PUT (Content-Range) is
# refused instead of replacing the whole file with the range; a stored
# file is sent as its bytes, never run (CGI) or interpreted (mod_include's
# INCLUDES filter).  Controls on the plain DocumentRoot, with the same
# options, show that those modules really are active on this server.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key tmp_files registry_rows storage_root);

my $root = storage_root('n1');
my $docroot = Apache::Test::vars('documentroot');

# ------------------------------------------------- configuration as a key
my $dir = '/files/open/' . unique_key('ht');
is req(PUT => "$dir/plain.txt", "ok\n")->code, 201, 'a plain file in the directory';
for my $name ('.htaccess', '.htpasswd', '.htgroup', '.ht', '.clusteracl') {
    my $key = "$dir/$name";
    my $r = req(PUT => $key, "NotADirective at all\nDeny from all\n");
    is $r->code, 403, "PUT $name is refused with 403";
    ok !-e "$root$key", "no $name on disk";
    is registry_rows($key), 0, "no registry entry for $name";
    is req(GET => $key)->code, 403, "GET $name is 403 too";
    is req(DELETE => $key)->code, 404, "DELETE $name is allowed (to clean up), 404";
}
is req(PUT => "$dir/.htx/inner.txt", "x\n")->code, 403,
    'a .ht* directory segment is refused as well';
ok !-e "$root$dir/.htx", 'and no such directory was created';
my $r = req(GET => "$dir/plain.txt");
is $r->code, 200, 'the directory still serves its files';
is $r->content, "ok\n", 'with the right bytes';
is req(PUT => "$dir/next.txt", "next\n")->code, 201, 'and takes new ones';
is req(DELETE => "$dir/next.txt")->code, 204, 'and deletes them';
is req(PUT => "$dir/x.htaccess", "harmless\n")->code, 201,
    'a name that only contains .htaccess is an ordinary key';
like do { local (@ARGV, $/) = Apache::Test::vars('serverroot') . '/logs/error_log'; <> } // '',
    qr/CS018: refusing key \Q$dir\E\/\.htaccess/, 'the refusal is logged (CS018)';

# The control: httpd does read such a file where the module is not in the
# way (else the refusal above would prove nothing).
my $ctl = "$docroot/control";
mkdir $ctl;
my $cdir = "$ctl/" . unique_key('htctl');
mkdir $cdir or die "mkdir $cdir: $!";
open my $fh, '>', "$cdir/.htaccess" or die $!;
print $fh "NotADirective at all\n";
close $fh;
open $fh, '>', "$cdir/page.txt" or die $!;
print $fh "x\n";
close $fh;
(my $curl = $cdir) =~ s/^\Q$docroot\E//;
is req(GET => "$curl/page.txt")->code, 500,
    'control: outside the module, that .htaccess breaks its directory (500)';

# ------------------------------------------------------- partial PUT
my $key = '/files/' . unique_key('range') . '.txt';
$r = req(PUT => $key, "0123456789");
is $r->code, 201, 'a 10-byte file';
my $v = $r->header('X-ClusterStorage-Version');
$r = req(PUT => $key, "XY", 'Content-Range' => 'bytes 2-3/*');
is $r->code, 400, 'PUT with Content-Range is 400';
$r = req(GET => $key);
is $r->content, "0123456789", 'the file is unchanged';
is $r->header('X-ClusterStorage-Version'), $v, 'at the same version';
$r = req(PUT => '/files/' . unique_key('range-new') . '.txt', "XY",
         'Content-Range' => 'bytes 0-1/2');
is $r->code, 400, 'a partial PUT of a new key is 400 too';
is_deeply [tmp_files('n1')], [], 'no temp file left behind';

# ------------------------------------------- stored files are only bytes
my $adir = '/files/active/' . unique_key('code');
my $ssi = qq{before <!--#echo var="DOCUMENT_URI" --> <!--#exec cmd="echo EXECUTED" --> after\n};
my $cgi = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho RAN-AS-CGI\n";
is req(PUT => "$adir/page.shtml", $ssi)->code, 201, 'an SSI page stored';
is req(PUT => "$adir/run.cgi", $cgi)->code, 201, 'a CGI script stored';
chmod 0755, "$root$adir/run.cgi";   # even executable on disk
$r = req(GET => "$adir/page.shtml");
is $r->code, 200, 'GET of the stored SSI page';
is $r->content, $ssi, 'is its bytes, not processed by INCLUDES';
$r = req(GET => "$adir/run.cgi");
is $r->code, 200, 'GET of the stored CGI script';
is $r->content, $cgi, 'is its bytes, not its output';
$r = req(GET => "$adir/page.shtml", undef, Range => 'bytes=0-5');
is $r->code, 206, 'ranges still apply';
is $r->content, substr($ssi, 0, 6), 'to the stored bytes';

# Controls: the same files on the plain DocumentRoot are run/interpreted.
my $pdir = "$ctl/" . unique_key('codectl');
mkdir $pdir or die "mkdir $pdir: $!";
open $fh, '>', "$pdir/page.shtml" or die $!;
print $fh $ssi;
close $fh;
open $fh, '>', "$pdir/run.cgi" or die $!;
print $fh $cgi;
close $fh;
chmod 0755, "$pdir/run.cgi";
(my $purl = $pdir) =~ s/^\Q$docroot\E//;
$r = req(GET => "$purl/page.shtml");
unlike $r->content, qr/<!--#/, 'control: INCLUDES processes the page outside the module';
$r = req(GET => "$purl/run.cgi");
like $r->content, qr/^RAN-AS-CGI$/m, 'control: the script runs as CGI outside the module';

done_testing;
